//! Name translation from T-SQL to the SQLite layout: database `X` is the attached schema `X`,
//! `X.dbo.T` becomes `"X"."T"`, `dbo.T` and bare table names resolve in the session's current
//! database, and the catalog views `sys.databases` / `sys.master_files` live in `main`.
//! String literals stay literals and `@P1` parameters stay parameters: nothing a client sends is
//! ever pasted into SQL text by this module except as a quoted literal it already was.

use super::lexer::{Tok, Token};
use super::parse::ParseError;

#[derive(Debug)]
pub struct Translated {
    pub sql: String,
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn invalid_object(name: &str, line: i32) -> ParseError {
    ParseError {
        number: 208,
        line,
        message: format!("Invalid object name '{name}'."),
    }
}

fn sys_view(name: &str, shown: &str, line: i32) -> Result<String, ParseError> {
    match name.to_ascii_lowercase().as_str() {
        "databases" => Ok("main.sys_databases".into()),
        "master_files" => Ok("main.sys_master_files".into()),
        _ => Err(invalid_object(shown, line)),
    }
}

/// Translates one data statement. `TOP n` right after the first SELECT becomes `LIMIT n`.
pub fn to_sqlite(
    tokens: &[Token],
    current_db: &str,
    server_name: &str,
) -> Result<Translated, ParseError> {
    let mut out: Vec<String> = Vec::new();
    let mut limit: Option<String> = None;
    let mut depth = 0i32;
    let mut i = 0;
    let mut prev_kw = String::new();
    while i < tokens.len() {
        let t = &tokens[i];
        let line = t.line;
        // SELECT TOP n
        if t.is("TOP") && prev_kw == "SELECT" {
            let n = match tokens.get(i + 1).map(|t| &t.tok) {
                Some(Tok::Num(n)) => n.clone(),
                _ => {
                    return Err(ParseError {
                        number: 102,
                        line,
                        message: "Incorrect syntax near 'TOP'.".into(),
                    })
                }
            };
            if depth != 0 || limit.is_some() {
                return Err(ParseError {
                    number: 50000,
                    line,
                    message: "The simulated server supports TOP only in the outermost SELECT."
                        .into(),
                });
            }
            limit = Some(n);
            i += 2;
            prev_kw.clear();
            continue;
        }
        match &t.tok {
            Tok::Word(_) | Tok::Quoted(_) => {
                // Collect a multi-part name a.b.c (allowing a..c).
                let mut parts: Vec<&Token> = vec![t];
                let mut j = i + 1;
                while j < tokens.len() && tokens[j].is_punct('.') {
                    if j + 1 < tokens.len() && tokens[j + 1].is_punct('.') {
                        // `a..c`: empty schema part
                        j += 1;
                    }
                    match tokens.get(j + 1) {
                        Some(n) if n.ident().is_some() => {
                            parts.push(n);
                            j += 2;
                        }
                        _ => break,
                    }
                }
                let names: Vec<&str> = parts.iter().filter_map(|p| p.ident()).collect();
                let shown = names.join(".");
                let table_position = matches!(
                    prev_kw.as_str(),
                    "FROM" | "JOIN" | "UPDATE" | "INTO" | "DELETE"
                );
                let is_func = tokens.get(j).map(|n| n.is_punct('(')).unwrap_or(false);
                let text = match names.len() {
                    3 | 4 => {
                        let n = &names[names.len() - 3..];
                        if n[1].eq_ignore_ascii_case("sys") {
                            sys_view(n[2], &shown, line)?
                        } else if n[1].is_empty() || n[1].eq_ignore_ascii_case("dbo") {
                            format!("{}.{}", quote_ident(n[0]), quote_ident(n[2]))
                        } else {
                            return Err(invalid_object(&shown, line));
                        }
                    }
                    2 if names[0].eq_ignore_ascii_case("sys") => sys_view(names[1], &shown, line)?,
                    2 if names[0].eq_ignore_ascii_case("dbo") => {
                        format!("{}.{}", quote_ident(current_db), quote_ident(names[1]))
                    }
                    2 => format!("{}.{}", render_ident(parts[0]), render_ident(parts[1])),
                    _ if table_position && !(prev_kw == "DELETE" && t.is("FROM")) => {
                        format!("{}.{}", quote_ident(current_db), quote_ident(names[0]))
                    }
                    _ if t.is("DB_NAME") && is_func => {
                        // DB_NAME() → the current database, as a literal.
                        if tokens.get(j + 1).map(|n| n.is_punct(')')).unwrap_or(false) {
                            j += 2;
                            quote_str(current_db)
                        } else {
                            return Err(ParseError {
                                number: 50000,
                                line,
                                message: "The simulated server supports DB_NAME() without arguments only.".into(),
                            });
                        }
                    }
                    _ => render_ident(t),
                };
                out.push(text);
                prev_kw = match &t.tok {
                    Tok::Word(w) if names.len() == 1 => w.to_ascii_uppercase(),
                    _ => String::new(),
                };
                i = j;
                continue;
            }
            Tok::Str(s) => out.push(quote_str(s)),
            Tok::Num(n) => out.push(n.clone()),
            Tok::Var(v) if v.starts_with("@@") => match v.to_ascii_uppercase().as_str() {
                "@@VERSION" => out.push(quote_str(
                    "Microsoft SQL Server 2016 (SP2) - 13.0.5026.0 (X64) (simulated by Lockstep)",
                )),
                "@@SERVERNAME" => out.push(quote_str(server_name)),
                "@@SPID" => out.push("51".into()),
                _ => {
                    return Err(ParseError {
                        number: 137,
                        line,
                        message: format!("Must declare the scalar variable \"{v}\"."),
                    })
                }
            },
            Tok::Var(v) => out.push(v.clone()),
            Tok::Punct(c) => {
                if *c == '(' {
                    depth += 1;
                } else if *c == ')' {
                    depth -= 1;
                }
                out.push(c.to_string());
            }
            Tok::Op(o) => out.push(o.clone()),
        }
        prev_kw.clear();
        i += 1;
    }
    let mut sql = out.join(" ");
    if let Some(n) = limit {
        sql.push_str(" LIMIT ");
        sql.push_str(&n);
    }
    Ok(Translated { sql })
}

fn render_ident(t: &Token) -> String {
    match &t.tok {
        Tok::Quoted(q) => quote_ident(q),
        Tok::Word(w) => w.clone(),
        _ => t.shown(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::lexer::tokenize;
    use super::*;

    fn tr(s: &str) -> String {
        to_sqlite(&tokenize(s).unwrap(), "Registry", "DC1")
            .unwrap()
            .sql
    }

    #[test]
    fn three_part_names_become_schema_qualified() {
        assert_eq!(
            tr("SELECT ServerId, Url FROM Registry.dbo.OutflowServices WHERE ServerId = @P1"),
            "SELECT ServerId , Url FROM \"Registry\".\"OutflowServices\" WHERE ServerId = @P1"
        );
    }

    #[test]
    fn bare_tables_resolve_in_the_current_database() {
        assert_eq!(
            tr("UPDATE OutflowServices SET secureFlag = 0"),
            "UPDATE \"Registry\".\"OutflowServices\" SET secureFlag = 0"
        );
    }

    #[test]
    fn top_becomes_limit_and_catalog_views_map_to_main() {
        assert_eq!(
            tr("SELECT TOP 1 1 FROM sys.databases WHERE name = N'Registry'"),
            "SELECT 1 FROM main.sys_databases WHERE name = 'Registry' LIMIT 1"
        );
    }

    #[test]
    fn an_unknown_catalog_view_is_an_invalid_object() {
        let e = to_sqlite(
            &tokenize("SELECT * FROM sys.objects").unwrap(),
            "master",
            "DC1",
        )
        .unwrap_err();
        assert_eq!(
            (e.number, e.message.as_str()),
            (208, "Invalid object name 'sys.objects'.")
        );
    }
}
