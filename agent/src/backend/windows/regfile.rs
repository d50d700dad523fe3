//! Reading the file `reg export KEY FILE /y` writes: the way the Windows backend reads registry
//! values. Unlike `reg query`, whose output is in the console's code page and whose messages are
//! in the server's language, an export file is UTF-16 with a fixed, documented syntax (the
//! `.reg` format, the same on every Windows language and under Wine), so a value with non-ASCII
//! characters reads back exactly and nothing here depends on English text.

/// One value of a key as the export file states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegEntry {
    /// The value's name; empty for the key's default value (`@` in the file).
    pub name: String,
    pub data: RegData,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegData {
    /// `REG_SZ`, or `REG_EXPAND_SZ` (unexpanded), as text.
    Text(String),
    /// Any other type: its `REG_*` name and its data as the file writes it
    /// (`dword:000001bb`, `hex(7):…`).
    Other { kind: &'static str, raw: String },
}

impl RegData {
    /// The data as `reg query` would print it, for evidence (a DWORD as `0x1bb`).
    pub fn display(&self) -> String {
        match self {
            RegData::Text(t) => t.clone(),
            RegData::Other { raw, .. } => match raw.strip_prefix("dword:") {
                Some(hex) => match u32::from_str_radix(hex, 16) {
                    Ok(n) => format!("{n:#x}"),
                    Err(_) => raw.clone(),
                },
                None => raw.clone(),
            },
        }
    }
}

/// The file's bytes as text: UTF-16LE with a byte-order mark as `reg export` writes it (UTF-8
/// is accepted too, for hand-written samples).
pub fn decode(bytes: &[u8]) -> Result<String, String> {
    if let Some(body) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        if !body.len().is_multiple_of(2) {
            return Err("registry export: odd number of bytes in UTF-16 text".into());
        }
        let units: Vec<u16> = body
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16(&units).map_err(|e| format!("registry export: {e}"));
    }
    let body = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    String::from_utf8(body.to_vec()).map_err(|e| format!("registry export: {e}"))
}

/// The values directly in `key` (`HKLM\…`): the first section of the export, which must be that
/// key (keys below it follow in their own sections and are not read).
pub fn key_values(text: &str, key: &str) -> Result<Vec<RegEntry>, String> {
    let lines = logical_lines(text);
    let mut rest = lines.iter().skip_while(|l| !l.starts_with('['));
    let header = rest
        .next()
        .ok_or_else(|| format!("registry export of {key} has no key section"))?;
    let section = header.trim_start_matches('[').trim_end_matches(']');
    if !same_key(section, key) {
        return Err(format!(
            "registry export of {key} starts with [{section}], not the key asked for"
        ));
    }
    rest.take_while(|l| !l.starts_with('['))
        .filter(|l| !l.trim().is_empty())
        .map(|l| entry(l).ok_or_else(|| format!("registry export of {key}: unreadable line `{l}`")))
        .collect()
}

/// `HKEY_LOCAL_MACHINE\A\B` and `HKLM\a\b` name the same key.
pub fn same_key(a: &str, b: &str) -> bool {
    let long = |k: &str| match k.split_once('\\') {
        Some((hive, rest)) if hive.eq_ignore_ascii_case("HKLM") => {
            format!("HKEY_LOCAL_MACHINE\\{rest}")
        }
        _ if k.eq_ignore_ascii_case("HKLM") => "HKEY_LOCAL_MACHINE".to_string(),
        _ => k.to_string(),
    };
    long(a.trim()).eq_ignore_ascii_case(&long(b.trim()))
}

/// Lines with hex data continued over several lines (`…,\`) joined into one.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut joining = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if joining {
            if let Some(last) = out.last_mut() {
                last.push_str(line.trim_start());
            }
        } else {
            out.push(line.to_string());
        }
        joining = line.ends_with(",\\");
        if joining {
            if let Some(last) = out.last_mut() {
                last.pop();
            }
        }
    }
    out
}

/// `"Name"="data"`, `@="data"`, `"Name"=dword:…` or `"Name"=hex(N):…`.
fn entry(line: &str) -> Option<RegEntry> {
    let (name, rest) = match line.strip_prefix('@') {
        Some(rest) => (String::new(), rest),
        None => quoted(line)?,
    };
    let value = rest.strip_prefix('=')?;
    let data = if value.starts_with('"') {
        let (text, tail) = quoted(value)?;
        if !tail.trim().is_empty() {
            return None;
        }
        RegData::Text(text)
    } else if let Some(hex) = value
        .strip_prefix("hex(2):")
        .or_else(|| value.strip_prefix("hex(1):"))
    {
        RegData::Text(utf16_hex(hex)?)
    } else {
        RegData::Other {
            kind: kind_of(value),
            raw: value.to_string(),
        }
    };
    Some(RegEntry { name, data })
}

/// A `"…"` string with `.reg` escapes (`\\`, `\"`, `\n`, `\r`), and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// `25,00,50,00,…,00,00` (UTF-16LE bytes, NUL-terminated) → text.
fn utf16_hex(hex: &str) -> Option<String> {
    let bytes: Vec<u8> = hex
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect::<Option<_>>()?;
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let text = String::from_utf16(&units).ok()?;
    Some(text.trim_end_matches('\0').to_string())
}

fn kind_of(value: &str) -> &'static str {
    let tag = value.split(':').next().unwrap_or("");
    match tag {
        "dword" => "REG_DWORD",
        "hex" => "REG_BINARY",
        "hex(0)" => "REG_NONE",
        "hex(4)" => "REG_DWORD",
        "hex(5)" => "REG_DWORD_BIG_ENDIAN",
        "hex(7)" => "REG_MULTI_SZ",
        "hex(b)" => "REG_QWORD",
        _ => "an unknown registry type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As an English Windows Server 2019 writes it (`reg export … /y`), before UTF-16 encoding.
    const EXPORT_EN: &str = "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Wow6432Node\\SupportCenter]\r\n\"RegistryConnect\"=\"DRIVER={SQL Server Native Client 11.0};SERVER=DC1;DATABASE=Registry;Trusted_Connection=Yes\"\r\n\"Quoted\"=\"say \\\"hi\\\" at C:\\\\Program Files\\\\ 100%\"\r\n\"Empty\"=\"\"\r\n@=\"default\"\r\n\"Port\"=dword:000001bb\r\n\"Path\"=hex(2):25,00,50,00,72,00,6f,00,67,00,72,00,61,00,6d,00,46,00,69,00,6c,00,\\\r\n  65,00,73,00,25,00,00,00\r\n\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Wow6432Node\\SupportCenter\\Sub]\r\n\"Below\"=\"not read\"\r\n\r\n";

    /// As a German Windows Server writes it: the syntax is the same in every language (no
    /// translated words), only the data differs.
    const EXPORT_DE: &str = "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Connected\\Outflow]\r\n\"DB_PreferedRegistry\"=\"REGSRV-MÜNCHEN\"\r\n\"Beschreibung\"=\"Größe: 2 GB; Straße \\\"Süd\\\"\"\r\n\r\n";

    fn utf16(text: &str) -> Vec<u8> {
        let mut out = vec![0xFF, 0xFE];
        for u in text.encode_utf16() {
            out.extend_from_slice(&u.to_le_bytes());
        }
        out
    }

    fn get<'a>(v: &'a [RegEntry], name: &str) -> &'a RegData {
        &v.iter().find(|e| e.name == name).unwrap().data
    }

    #[test]
    fn an_english_export_reads_every_value_of_the_key_and_nothing_below_it() {
        let text = decode(&utf16(EXPORT_EN)).unwrap();
        let v = key_values(&text, r"HKLM\SOFTWARE\Wow6432Node\SupportCenter").unwrap();
        assert_eq!(v.len(), 6);
        assert_eq!(
            get(&v, "RegistryConnect"),
            &RegData::Text("DRIVER={SQL Server Native Client 11.0};SERVER=DC1;DATABASE=Registry;Trusted_Connection=Yes".into())
        );
        assert_eq!(
            get(&v, "Quoted"),
            &RegData::Text(r#"say "hi" at C:\Program Files\ 100%"#.into())
        );
        assert_eq!(get(&v, "Empty"), &RegData::Text(String::new()));
        assert_eq!(get(&v, ""), &RegData::Text("default".into()));
        assert_eq!(get(&v, "Port").display(), "0x1bb");
        assert!(matches!(
            get(&v, "Port"),
            RegData::Other {
                kind: "REG_DWORD",
                ..
            }
        ));
        assert_eq!(get(&v, "Path"), &RegData::Text("%ProgramFiles%".into()));
        assert!(v.iter().all(|e| e.name != "Below"));
    }

    #[test]
    fn a_german_export_reads_the_same_way_with_its_non_ascii_data_intact() {
        let text = decode(&utf16(EXPORT_DE)).unwrap();
        let v = key_values(&text, r"HKLM\software\connected\OUTFLOW").unwrap();
        assert_eq!(
            get(&v, "DB_PreferedRegistry"),
            &RegData::Text("REGSRV-MÜNCHEN".into())
        );
        assert_eq!(
            get(&v, "Beschreibung"),
            &RegData::Text("Größe: 2 GB; Straße \"Süd\"".into())
        );
    }

    #[test]
    fn an_export_of_another_key_or_garbage_is_an_error_not_an_empty_key() {
        let text = decode(EXPORT_EN.as_bytes()).unwrap();
        assert!(key_values(&text, r"HKLM\SOFTWARE\Other")
            .unwrap_err()
            .contains("not the key asked for"));
        assert!(key_values("", r"HKLM\SOFTWARE\Other").is_err());
        let bad =
            "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\X]\r\nnonsense\r\n";
        assert!(key_values(bad, r"HKLM\X").unwrap_err().contains("nonsense"));
        assert!(decode(&[0xFF, 0xFE, 0x41]).is_err());
    }
}
