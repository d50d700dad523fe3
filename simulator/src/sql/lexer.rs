//! A T-SQL tokenizer: words, `[bracketed]` and `"quoted"` identifiers, `'strings'` and `N'…'`,
//! numbers, `@variables`, punctuation; comments dropped. Each token knows its line in the batch,
//! so errors can name it as SQL Server does.

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A bare identifier or keyword.
    Word(String),
    /// `[x]` or `"x"`: always an identifier.
    Quoted(String),
    /// `'x'` or `N'x'`, with `''` unescaped.
    Str(String),
    Num(String),
    /// `@name` (parameters) or `@@name` (globals).
    Var(String),
    Punct(char),
    /// Two-character operators: `<=`, `>=`, `<>`, `!=`.
    Op(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub line: i32,
}

impl Token {
    /// Case-insensitive keyword test (only bare words are keywords).
    pub fn is(&self, kw: &str) -> bool {
        matches!(&self.tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
    pub fn is_punct(&self, c: char) -> bool {
        self.tok == Tok::Punct(c)
    }
    /// The identifier text of a word or quoted identifier.
    pub fn ident(&self) -> Option<&str> {
        match &self.tok {
            Tok::Word(w) | Tok::Quoted(w) => Some(w),
            _ => None,
        }
    }
    /// How the token reads in an error message.
    pub fn shown(&self) -> String {
        match &self.tok {
            Tok::Word(w) | Tok::Num(w) | Tok::Var(w) | Tok::Op(w) => w.clone(),
            Tok::Quoted(w) => w.clone(),
            Tok::Str(s) => s.clone(),
            Tok::Punct(c) => c.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LexError {
    pub line: i32,
    pub message: String,
}

pub fn tokenize(text: &str) -> Result<Vec<Token>, LexError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        let push = |out: &mut Vec<Token>, tok: Tok| {
            out.push(Token {
                tok,
                line: start_line,
            })
        };
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            loop {
                if i + 1 >= chars.len() {
                    return Err(LexError {
                        line: start_line,
                        message: "Missing end comment mark '*/'.".into(),
                    });
                }
                if chars[i] == '*' && chars[i + 1] == '/' {
                    i += 2;
                    break;
                }
                if chars[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
        } else if c == '\'' || ((c == 'N' || c == 'n') && chars.get(i + 1) == Some(&'\'')) {
            i += if c == '\'' { 1 } else { 2 };
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => {
                        return Err(LexError {
                            line: start_line,
                            message: format!(
                                "Unclosed quotation mark after the character string '{s}'."
                            ),
                        })
                    }
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        if ch == '\n' {
                            line += 1;
                        }
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            push(&mut out, Tok::Str(s));
        } else if c == '[' || c == '"' {
            let close = if c == '[' { ']' } else { '"' };
            i += 1;
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => {
                        return Err(LexError {
                            line: start_line,
                            message: format!("Unclosed quotation mark after the identifier '{s}'."),
                        })
                    }
                    Some(&ch) if ch == close && chars.get(i + 1) == Some(&close) => {
                        s.push(close);
                        i += 2;
                    }
                    Some(&ch) if ch == close => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            push(&mut out, Tok::Quoted(s));
        } else if c == '@' {
            let mut s = String::from("@");
            i += 1;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '@')
            {
                s.push(chars[i]);
                i += 1;
            }
            push(&mut out, Tok::Var(s));
        } else if c.is_ascii_digit() {
            let mut s = String::new();
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                s.push(chars[i]);
                i += 1;
            }
            push(&mut out, Tok::Num(s));
        } else if c.is_alphabetic() || c == '_' || c == '#' {
            let mut s = String::new();
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || chars[i] == '_'
                    || chars[i] == '$'
                    || chars[i] == '#')
            {
                s.push(chars[i]);
                i += 1;
            }
            push(&mut out, Tok::Word(s));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["<=", ">=", "<>", "!="].contains(&two.as_str()) {
                push(&mut out, Tok::Op(two));
                i += 2;
            } else if "(),.;=<>*+-/%".contains(c) {
                push(&mut out, Tok::Punct(c));
                i += 1;
            } else {
                return Err(LexError {
                    line: start_line,
                    message: format!("Incorrect syntax near '{c}'."),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_brackets_and_comments_are_read() {
        let t =
            tokenize("SELECT [a b], N'it''s' -- note\n/* x */ FROM dbo.T WHERE x = @P1").unwrap();
        let toks: Vec<Tok> = t.iter().map(|t| t.tok.clone()).collect();
        assert_eq!(toks[1], Tok::Quoted("a b".into()));
        assert_eq!(toks[3], Tok::Str("it's".into()));
        assert_eq!(t[4].line, 2);
        assert_eq!(toks.last(), Some(&Tok::Var("@P1".into())));
    }

    #[test]
    fn an_unclosed_string_is_an_error_naming_it() {
        let e = tokenize("SELECT 'abc").unwrap_err();
        assert!(
            e.message.contains("Unclosed quotation mark"),
            "{}",
            e.message
        );
    }
}
