//! What the probes look for in a page: the version at the bottom of Support Center's logon page,
//! a well-formed XML document, and the Management API page's first sentence (SEED-NOTES 13).

/// The last `Version x.y[.z[.w]]` on the page (the footer), as (version, matched text).
pub fn support_center_version(body: &str) -> Option<(String, String)> {
    let text = visible_text(body);
    let lower = text.to_ascii_lowercase();
    let mut found = None;
    let mut from = 0;
    while let Some(i) = lower[from..].find("version") {
        let start = from + i;
        let after = &text[start + "version".len()..];
        let trimmed = after.trim_start_matches([' ', ':', '\u{a0}']);
        let v: String = trimmed
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let v = v.trim_end_matches('.').to_string();
        if v.contains('.') && v.split('.').all(|p| !p.is_empty()) {
            let end = start + "version".len() + (after.len() - trimmed.len()) + v.len();
            found = Some((v, text[start..end].to_string()));
        }
        from = start + "version".len();
    }
    found
}

/// Dotted versions compared numerically, missing parts 0 ("8.11" equals "8.11.0.0").
pub fn same_version(a: &str, b: &str) -> bool {
    let parse =
        |s: &str| -> Option<Vec<u64>> { s.split('.').map(|p| p.trim().parse().ok()).collect() };
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => {
            let n = x.len().max(y.len());
            (0..n).all(|i| x.get(i).unwrap_or(&0) == y.get(i).unwrap_or(&0))
        }
        _ => false,
    }
}

/// `Ok(root element name)` for a well-formed XML document, else the parser's complaint.
pub fn xml_root(body: &str) -> Result<String, String> {
    roxmltree::Document::parse(body)
        .map(|d| d.root_element().tag_name().name().to_string())
        .map_err(|e| e.to_string())
}

/// The WCF page's first sentence: the first `class="intro"` paragraph's first sentence, or the
/// body text's when there is no such paragraph.
pub fn first_sentence(body: &str) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let start = ["class=\"intro\"", "class='intro'", "class=intro"]
        .iter()
        .filter_map(|m| lower.find(m))
        .min()
        .and_then(|i| body[i..].find('>').map(|j| i + j + 1));
    let text = match start {
        Some(s) => visible_text(&body[s..]),
        None => {
            let b = lower
                .find("<body")
                .and_then(|i| body[i..].find('>').map(|j| i + j + 1))
                .unwrap_or(0);
            visible_text(&body[b..])
        }
    };
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let end = text
        .find(['.', '!', '?'])
        .map(|i| i + 1)
        .unwrap_or(text.len());
    Some(text[..end].to_string())
}

/// Text with tags removed, the common entities decoded and whitespace collapsed.
pub fn visible_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&middot;", "·")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_footer_version_is_the_last_one_on_the_page() {
        let page = "<p>Requires browser version 11</p><div id=footer>Support Center &middot; Version 8.11.0.12</div>";
        assert_eq!(
            support_center_version(page),
            Some(("8.11.0.12".to_string(), "Version 8.11.0.12".to_string()))
        );
        assert_eq!(support_center_version("<p>no version here</p>"), None);
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(same_version("8.11", "8.11.0.0"));
        assert!(!same_version("8.8.6", "8.11"));
        assert!(!same_version("8.x", "8.x"));
    }

    #[test]
    fn the_wcf_intro_is_the_first_sentence() {
        let page = "<HTML><BODY><P class=\"heading1\">ManagementService Service</P><P class=\"intro\">You have created a service.<P class='intro'>To test this service…";
        assert_eq!(
            first_sentence(page).as_deref(),
            Some("You have created a service.")
        );
    }

    #[test]
    fn a_truncated_document_is_not_xml() {
        assert!(xml_root("<a><b></a>").is_err());
        assert_eq!(
            xml_root("<?xml version=\"1.0\"?><status/>").unwrap(),
            "status"
        );
    }
}
