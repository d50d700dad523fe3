//! Splits a T-SQL batch into the statements the simulated server knows, the way SQL Server does
//! without semicolons: a new statement begins at a statement keyword outside parentheses.
//!
//! This is deliberately not a T-SQL engine. It knows exactly the statements the upgrade procedure
//! uses (`USE`, `DBCC CHECKDB`, `sp_updatestats`, `BACKUP DATABASE`, `IF [NOT] EXISTS (…)`,
//! `BEGIN … END`, `SET`, `PRINT`) plus `SELECT`/`UPDATE`/`INSERT`/`DELETE`, which go to SQLite
//! after name translation. Anything else is a syntax error naming the token, as SQL Server's
//! error 102 does.

use super::lexer::{Tok, Token};

#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    Use {
        db: String,
        line: i32,
    },
    CheckDb {
        db: Option<String>,
        no_infomsgs: bool,
        line: i32,
    },
    UpdateStats {
        line: i32,
    },
    Backup {
        db: String,
        disk: TextArg,
        line: i32,
    },
    /// `RESTORE VERIFYONLY FROM DISK = …`: is the backup file there and intact?
    RestoreVerify {
        disk: TextArg,
        line: i32,
    },
    /// `RESTORE DATABASE x FROM DISK = … [WITH REPLACE]`.
    Restore {
        db: String,
        disk: TextArg,
        replace: bool,
        line: i32,
    },
    If {
        negated: bool,
        query: Vec<Token>,
        then: Vec<Stmt>,
        line: i32,
    },
    Block(Vec<Stmt>),
    Set {
        line: i32,
    },
    Print {
        text: String,
        line: i32,
    },
    /// SELECT / UPDATE / INSERT / DELETE, tokens as written.
    Data {
        tokens: Vec<Token>,
        line: i32,
    },
    Exec {
        procedure: String,
        line: i32,
    },
}

/// A text argument as written: a string literal, or an `@P1` parameter of `sp_executesql`
/// (BACKUP and RESTORE accept a variable for the device, which is how a careful client passes
/// a path without building SQL text from it).
#[derive(Debug, Clone, PartialEq)]
pub enum TextArg {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub number: i32,
    pub line: i32,
    pub message: String,
}

const STARTS: [&str; 16] = [
    "USE", "DBCC", "EXEC", "EXECUTE", "BACKUP", "RESTORE", "IF", "BEGIN", "END", "SET", "PRINT",
    "SELECT", "UPDATE", "INSERT", "DELETE", "DECLARE",
];

pub fn parse_batch(tokens: &[Token]) -> Result<Vec<Stmt>, ParseError> {
    let mut p = Parser { t: tokens, pos: 0 };
    let stmts = p.block(false)?;
    Ok(stmts)
}

struct Parser<'a> {
    t: &'a [Token],
    pos: usize,
}

fn syntax(tok: Option<&Token>, last_line: i32) -> ParseError {
    match tok {
        Some(t) => ParseError {
            number: 102,
            line: t.line,
            message: format!("Incorrect syntax near '{}'.", t.shown()),
        },
        None => ParseError {
            number: 102,
            line: last_line,
            message: "Incorrect syntax near the end of the batch.".into(),
        },
    }
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.t.get(self.pos)
    }
    fn next(&mut self) -> Option<&'a Token> {
        let t = self.t.get(self.pos);
        self.pos += 1;
        t
    }
    fn last_line(&self) -> i32 {
        self.t.last().map(|t| t.line).unwrap_or(1)
    }
    fn err_here(&self) -> ParseError {
        syntax(self.peek(), self.last_line())
    }
    fn expect_word(&mut self, kw: &str) -> Result<(), ParseError> {
        match self.peek() {
            Some(t) if t.is(kw) => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(self.err_here()),
        }
    }
    fn at_start(&self) -> bool {
        matches!(self.peek(), Some(t) if STARTS.iter().any(|k| t.is(k)) || t.is_punct(';'))
    }
    /// Skips tokens up to the next statement start at parenthesis depth 0.
    fn skip_clause(&mut self) {
        let mut depth = 0i32;
        while let Some(t) = self.peek() {
            if depth == 0 && self.at_start() {
                return;
            }
            if t.is_punct('(') {
                depth += 1;
            } else if t.is_punct(')') {
                depth -= 1;
            }
            self.pos += 1;
        }
    }

    fn block(&mut self, until_end: bool) -> Result<Vec<Stmt>, ParseError> {
        let mut out = Vec::new();
        loop {
            while matches!(self.peek(), Some(t) if t.is_punct(';')) {
                self.pos += 1;
            }
            match self.peek() {
                None if until_end => {
                    return Err(ParseError {
                        number: 102,
                        line: self.last_line(),
                        message:
                            "Incorrect syntax near the end of the batch: BEGIN has no matching END."
                                .into(),
                    })
                }
                None => return Ok(out),
                Some(t) if t.is("END") => {
                    if until_end {
                        self.pos += 1;
                        return Ok(out);
                    }
                    return Err(self.err_here());
                }
                Some(_) => out.push(self.statement(out.is_empty())?),
            }
        }
    }

    fn statement(&mut self, first: bool) -> Result<Stmt, ParseError> {
        let t = self.next().ok_or_else(|| syntax(None, self.last_line()))?;
        let line = t.line;
        let kw = match &t.tok {
            Tok::Word(w) => w.to_ascii_uppercase(),
            _ => return Err(syntax(Some(t), line)),
        };
        match kw.as_str() {
            "USE" => {
                let db = self
                    .next()
                    .and_then(|t| t.ident())
                    .ok_or_else(|| self.err_prev())?;
                Ok(Stmt::Use {
                    db: db.to_string(),
                    line,
                })
            }
            "DBCC" => {
                self.expect_word("CHECKDB").map_err(|_| ParseError {
                    number: 2526,
                    line,
                    message: "The simulated server runs only DBCC CHECKDB.".into(),
                })?;
                let mut db = None;
                if matches!(self.peek(), Some(t) if t.is_punct('(')) {
                    self.pos += 1;
                    let arg = self.next().ok_or_else(|| self.err_prev())?;
                    db = match &arg.tok {
                        Tok::Word(w) | Tok::Quoted(w) | Tok::Str(w) => Some(w.clone()),
                        Tok::Num(n) if n == "0" => None,
                        _ => return Err(syntax(Some(arg), line)),
                    };
                    if !matches!(self.next(), Some(t) if t.is_punct(')')) {
                        return Err(self.err_prev());
                    }
                }
                let mut no_infomsgs = false;
                if matches!(self.peek(), Some(t) if t.is("WITH")) {
                    self.pos += 1;
                    while let Some(t) = self.peek() {
                        if t.is("NO_INFOMSGS") {
                            no_infomsgs = true;
                        } else if !(t.is("ALL_ERRORMSGS")
                            || t.is("PHYSICAL_ONLY")
                            || t.is_punct(','))
                        {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                Ok(Stmt::CheckDb {
                    db,
                    no_infomsgs,
                    line,
                })
            }
            "EXEC" | "EXECUTE" => {
                let name = self.multipart()?;
                self.skip_clause();
                if name.to_ascii_lowercase().ends_with("sp_updatestats") {
                    Ok(Stmt::UpdateStats { line })
                } else {
                    Ok(Stmt::Exec {
                        procedure: name,
                        line,
                    })
                }
            }
            "SP_UPDATESTATS" if first => Ok(Stmt::UpdateStats { line }),
            "BACKUP" => {
                self.expect_word("DATABASE")?;
                let db = self.ident()?;
                self.expect_word("TO")?;
                let disk = self.disk()?;
                self.with_options();
                Ok(Stmt::Backup { db, disk, line })
            }
            "RESTORE" => {
                if matches!(self.peek(), Some(t) if t.is("VERIFYONLY")) {
                    self.pos += 1;
                    self.expect_word("FROM")?;
                    let disk = self.disk()?;
                    self.with_options();
                    return Ok(Stmt::RestoreVerify { disk, line });
                }
                self.expect_word("DATABASE")?;
                let db = self.ident()?;
                self.expect_word("FROM")?;
                let disk = self.disk()?;
                let replace = self.with_options().iter().any(|o| o == "REPLACE");
                Ok(Stmt::Restore {
                    db,
                    disk,
                    replace,
                    line,
                })
            }
            "IF" => {
                let negated = matches!(self.peek(), Some(t) if t.is("NOT"));
                if negated {
                    self.pos += 1;
                }
                self.expect_word("EXISTS").map_err(|_| ParseError {
                    number: 102,
                    line,
                    message: "The simulated server supports IF [NOT] EXISTS (SELECT …) only."
                        .into(),
                })?;
                let query = self.parenthesized()?;
                let then = match self.peek() {
                    Some(t) if t.is("BEGIN") => {
                        self.pos += 1;
                        self.block(true)?
                    }
                    Some(_) => vec![self.statement(false)?],
                    None => return Err(self.err_here()),
                };
                Ok(Stmt::If {
                    negated,
                    query,
                    then,
                    line,
                })
            }
            "BEGIN" => Ok(Stmt::Block(self.block(true)?)),
            "SET" => {
                self.skip_clause();
                Ok(Stmt::Set { line })
            }
            "PRINT" => match self.next() {
                Some(Token {
                    tok: Tok::Str(s), ..
                }) => Ok(Stmt::Print {
                    text: s.clone(),
                    line,
                }),
                _ => Err(self.err_prev()),
            },
            "SELECT" | "UPDATE" | "INSERT" | "DELETE" => {
                let start = self.pos - 1;
                self.data_clause(&kw);
                Ok(Stmt::Data {
                    tokens: self.t[start..self.pos].to_vec(),
                    line,
                })
            }
            _ => Err(syntax(Some(t), line)),
        }
    }

    fn ident(&mut self) -> Result<String, ParseError> {
        self.next()
            .and_then(|t| t.ident())
            .map(str::to_string)
            .ok_or_else(|| self.err_prev())
    }

    /// `DISK = 'path'` or `DISK = @P1`.
    fn disk(&mut self) -> Result<TextArg, ParseError> {
        self.expect_word("DISK")?;
        if !matches!(self.next(), Some(t) if t.is_punct('=')) {
            return Err(self.err_prev());
        }
        match self.next() {
            Some(Token {
                tok: Tok::Str(s), ..
            }) => Ok(TextArg::Literal(s.clone())),
            Some(Token {
                tok: Tok::Var(v), ..
            }) if !v.starts_with("@@") => Ok(TextArg::Param(v.clone())),
            _ => Err(self.err_prev()),
        }
    }

    /// `WITH A, B = x, …` up to the next statement; answers the bare option words, upper case.
    fn with_options(&mut self) -> Vec<String> {
        let mut words = Vec::new();
        if !matches!(self.peek(), Some(t) if t.is("WITH")) {
            return words;
        }
        self.pos += 1;
        let start = self.pos;
        self.skip_clause();
        for t in &self.t[start..self.pos] {
            if let Tok::Word(w) = &t.tok {
                words.push(w.to_ascii_uppercase());
            }
        }
        words
    }

    fn err_prev(&self) -> ParseError {
        syntax(self.t.get(self.pos.saturating_sub(1)), self.last_line())
    }

    fn multipart(&mut self) -> Result<String, ParseError> {
        let mut parts = Vec::new();
        loop {
            let t = self
                .next()
                .and_then(|t| t.ident())
                .ok_or_else(|| self.err_prev())?;
            parts.push(t.to_string());
            if matches!(self.peek(), Some(t) if t.is_punct('.')) {
                self.pos += 1;
            } else {
                return Ok(parts.join("."));
            }
        }
    }

    /// `( … )` with nesting; returns the inside.
    fn parenthesized(&mut self) -> Result<Vec<Token>, ParseError> {
        if !matches!(self.next(), Some(t) if t.is_punct('(')) {
            return Err(self.err_prev());
        }
        let start = self.pos;
        let mut depth = 1;
        while let Some(t) = self.next() {
            if t.is_punct('(') {
                depth += 1;
            } else if t.is_punct(')') {
                depth -= 1;
                if depth == 0 {
                    return Ok(self.t[start..self.pos - 1].to_vec());
                }
            }
        }
        Err(syntax(None, self.last_line()))
    }

    /// Consumes the rest of a data statement. `UPDATE … SET`, `INSERT … SELECT` and
    /// `… UNION SELECT` continue the statement rather than starting a new one.
    fn data_clause(&mut self, kw: &str) {
        let mut depth = 0i32;
        let mut seen_set = false;
        let mut prev_union = false;
        while let Some(t) = self.peek() {
            if depth == 0 && self.at_start() {
                let continues = (kw == "UPDATE" && t.is("SET") && !seen_set)
                    || (kw == "INSERT" && t.is("SELECT"))
                    || (t.is("SELECT") && prev_union);
                if !continues {
                    return;
                }
                if t.is("SET") {
                    seen_set = true;
                }
            }
            prev_union = t.is("UNION") || t.is("ALL") || t.is("EXCEPT") || t.is("INTERSECT");
            if t.is_punct('(') {
                depth += 1;
            } else if t.is_punct(')') {
                depth -= 1;
            }
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::lexer::tokenize;
    use super::*;

    fn parse(s: &str) -> Result<Vec<Stmt>, ParseError> {
        parse_batch(&tokenize(s).unwrap())
    }

    #[test]
    fn statements_without_semicolons_are_split_at_keywords() {
        let s = parse("USE Registry\nDBCC CHECKDB\nUPDATE OutflowServices SET secureFlag = 0 WHERE ServerId = 1\nSELECT 1").unwrap();
        assert_eq!(s.len(), 4);
        assert!(matches!(&s[2], Stmt::Data { tokens, .. } if tokens.len() == 10));
    }

    #[test]
    fn the_seeds_if_with_go_inside_begin_is_a_syntax_error() {
        let e = parse("IF EXISTS (SELECT TOP 1 1 FROM sys.databases WHERE name = 'Registry')\nBEGIN\nUSE Registry").unwrap_err();
        assert_eq!(e.number, 102);
        assert!(e.message.contains("BEGIN has no matching END"));
    }

    #[test]
    fn if_exists_with_a_block_is_parsed() {
        let s = parse("IF EXISTS (SELECT TOP 1 1 FROM sys.databases WHERE name = 'Registry')\nBEGIN\nUSE Registry\nEXEC sp_updatestats\nEND").unwrap();
        match &s[0] {
            Stmt::If {
                then,
                negated: false,
                ..
            } => assert_eq!(then.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backup_and_restore_take_a_literal_or_a_parameter_as_the_device() {
        let s = parse("BACKUP DATABASE [Registry] TO DISK = @P1 WITH CHECKSUM, INIT\nRESTORE VERIFYONLY FROM DISK = N'D:\\b.bak' WITH CHECKSUM\nRESTORE DATABASE Registry FROM DISK = @P1 WITH REPLACE").unwrap();
        assert_eq!(
            s[0],
            Stmt::Backup {
                db: "Registry".into(),
                disk: TextArg::Param("@P1".into()),
                line: 1
            }
        );
        assert_eq!(
            s[1],
            Stmt::RestoreVerify {
                disk: TextArg::Literal("D:\\b.bak".into()),
                line: 2
            }
        );
        assert!(matches!(&s[2], Stmt::Restore { replace: true, .. }));
        let e = parse("RESTORE DATABASE Registry FROM TAPE = 'x'").unwrap_err();
        assert_eq!(e.message, "Incorrect syntax near 'TAPE'.");
    }

    #[test]
    fn go_is_not_sql() {
        let e = parse("DBCC CHECKDB\nGO").unwrap_err();
        assert_eq!(e.message, "Incorrect syntax near 'GO'.");
        assert_eq!(e.line, 2);
    }
}
