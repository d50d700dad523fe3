//! A minimal SMTP client (RFC 5321 without TLS or authentication: a relay on the site's network)
//! that sends one plain-text message: EHLO, MAIL FROM, RCPT TO for each recipient, DATA with
//! dot-stuffing, QUIT. Every reply is checked; the first unexpected one is the error.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One message to send.
pub struct Mail<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub subject: &'a str,
    pub body: &'a str,
}

pub use crate::config::notify::valid_address;

/// Sends `mail` through the server at `addr` (`host:port`), all within `timeout`.
pub async fn send(addr: &str, mail: &Mail<'_>, timeout: Duration) -> Result<(), String> {
    tokio::time::timeout(timeout, conversation(addr, mail))
        .await
        .map_err(|_| format!("SMTP server {addr} did not finish within {timeout:?}"))?
}

async fn conversation(addr: &str, mail: &Mail<'_>) -> Result<(), String> {
    if !valid_address(mail.from) || !mail.to.iter().all(|a| valid_address(a)) {
        return Err("a sender or recipient address is not valid".into());
    }
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to SMTP server {addr}: {e}"))?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    expect(&mut read, 220, "greeting").await?;
    command(&mut write, &mut read, "EHLO lockstep", 250).await?;
    command(
        &mut write,
        &mut read,
        &format!("MAIL FROM:<{}>", mail.from),
        250,
    )
    .await?;
    for to in mail.to {
        command(&mut write, &mut read, &format!("RCPT TO:<{to}>"), 250).await?;
    }
    command(&mut write, &mut read, "DATA", 354).await?;
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let subject: String = mail.subject.chars().filter(|c| !c.is_control()).collect();
    let mut data = format!(
        "From: <{}>\r\nTo: {}\r\nSubject: {subject}\r\nDate: {date}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        mail.from,
        mail.to.iter().map(|t| format!("<{t}>")).collect::<Vec<_>>().join(", "),
    );
    for line in mail.body.lines() {
        // Dot-stuffing: a line starting with "." gets another, so it cannot end the message.
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    data.push('.');
    command(&mut write, &mut read, &data, 250).await?;
    command(&mut write, &mut read, "QUIT", 221).await?;
    Ok(())
}

async fn command(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &str,
    code: u16,
) -> Result<(), String> {
    write
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(|e| format!("SMTP write failed: {e}"))?;
    let verb = line.split([' ', ':', '\r']).next().unwrap_or("message");
    expect(read, code, if line.len() > 40 { "message" } else { verb }).await
}

/// Reads one (possibly multi-line) reply and checks its code.
async fn expect(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    code: u16,
    what: &str,
) -> Result<(), String> {
    loop {
        let mut line = String::new();
        let n = read
            .read_line(&mut line)
            .await
            .map_err(|e| format!("SMTP read failed: {e}"))?;
        if n == 0 {
            return Err(format!("SMTP server closed the connection after {what}"));
        }
        let got: u16 = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        if got != code {
            return Err(format!(
                "SMTP server answered {what} with {}",
                line.trim_end()
            ));
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_line_breaks_or_brackets_are_not_valid() {
        assert!(valid_address("ops@example.com"));
        assert!(!valid_address("ops@example.com>\r\nRCPT TO:<x@y"));
        assert!(!valid_address("nobody"));
    }
}
