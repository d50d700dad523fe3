//! The TDS (SQL Server wire protocol) endpoint of a simulated database server: PRELOGIN without
//! encryption, LOGIN7 with SQL authentication, SQL batches, `sp_executesql` RPCs and attention.
//!
//! Malformed input from a client ends that connection with a log line; it never panics and
//! never touches the databases.

pub mod login;
pub mod rpc;
pub mod tokens;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::sql::{Event, ServerMessage, Session, SqlInstance, Value};
use tokens::{TokenWriter, DONE_ATTN, DONE_COUNT, DONE_ERROR, DONE_FINAL, DONE_MORE};
use wire::{
    read_message, write_message, Reader, WireError, PKT_ATTENTION, PKT_LOGIN7, PKT_PRELOGIN,
    PKT_REPLY, PKT_RPC, PKT_SQL_BATCH,
};

const TDS72: u32 = 0x7209_0002;
const TDS74: u32 = 0x7400_0004;
const DEFAULT_PACKET: usize = 4096;

/// A running TDS listener. Dropping it stops accepting and closes every open connection.
pub struct TdsHandle {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TdsHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether the SQL Server service is up; while it is not, connections are closed at once.
pub type Availability = Arc<dyn Fn() -> bool + Send + Sync>;

/// Serves `instance` on `listener` until the handle is dropped.
pub fn spawn(listener: TcpListener, instance: SqlInstance) -> std::io::Result<TdsHandle> {
    spawn_gated(listener, instance, Arc::new(|| true))
}

/// Like [`spawn`], but a stopped SQL Server service (as `available` reports it) refuses clients.
pub fn spawn_gated(
    listener: TcpListener,
    instance: SqlInstance,
    available: Availability,
) -> std::io::Result<TdsHandle> {
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if !available() {
                            tracing::info!(%peer, "SQL Server service stopped: connection closed");
                            drop(stream);
                            continue;
                        }
                        let inst = instance.clone();
                        conns.spawn(async move {
                            if let Err(e) = handle_connection(stream, inst).await {
                                if e != WireError::Closed {
                                    tracing::info!(%peer, error = %e, "TDS connection ended");
                                }
                            }
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "TDS accept failed"),
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    });
    Ok(TdsHandle { addr, task })
}

/// One client connection from PRELOGIN to close.
pub async fn handle_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    instance: SqlInstance,
) -> Result<(), WireError> {
    let pre = read_message(&mut s, DEFAULT_PACKET).await?;
    if pre.kind != PKT_PRELOGIN {
        return Err(WireError::Malformed(format!(
            "expected PRELOGIN, got packet type {:#04x}",
            pre.kind
        )));
    }
    let _client = login::parse_prelogin(&pre.payload)?;
    write_message(&mut s, PKT_REPLY, &login::prelogin_reply(), DEFAULT_PACKET).await?;

    let msg = read_message(&mut s, 32767).await?;
    if msg.kind != PKT_LOGIN7 {
        // A client that insists on TLS sends its handshake here: the simulator does not encrypt.
        return Err(WireError::Malformed(format!(
            "expected LOGIN7, got packet type {:#04x} (a TLS handshake? the simulator does not encrypt)",
            msg.kind
        )));
    }
    let l = login::parse_login7(&msg.payload)?;
    let mut w = TokenWriter::new(instance.server_name());
    let refuse = |w: &mut TokenWriter, number: i32, text: String| {
        w.error(&ServerMessage {
            number,
            state: 1,
            class: 14,
            text,
            procedure: String::new(),
            line: 1,
        });
        w.done(0xFD, DONE_ERROR, 0);
    };
    if l.tds_version < TDS72 {
        refuse(&mut w, 18456, format!("Login failed: TDS version {:#010x} is older than 7.2, which the simulated server requires.", l.tds_version));
        return write_message(&mut s, PKT_REPLY, &w.out, DEFAULT_PACKET).await;
    }
    if l.sspi {
        refuse(&mut w, 18452, "Login failed. The login is from an untrusted domain and cannot be used with Integrated authentication.".into());
        return write_message(&mut s, PKT_REPLY, &w.out, DEFAULT_PACKET).await;
    }
    if !instance.check_login(&l.user, &l.password) {
        tracing::info!(user = %l.user, "TDS login refused");
        refuse(
            &mut w,
            18456,
            format!("Login failed for user '{}'.", l.user),
        );
        return write_message(&mut s, PKT_REPLY, &w.out, DEFAULT_PACKET).await;
    }
    let database = if l.database.is_empty() {
        Some("master".to_string())
    } else {
        instance.database(&l.database)
    };
    let Some(database) = database else {
        w.error(&ServerMessage::error(
            4060,
            11,
            format!(
                "Cannot open database \"{}\" requested by the login. The login failed.",
                l.database
            ),
            1,
        ));
        refuse(
            &mut w,
            18456,
            format!("Login failed for user '{}'.", l.user),
        );
        return write_message(&mut s, PKT_REPLY, &w.out, DEFAULT_PACKET).await;
    };
    let packet = match l.packet_size {
        0 => DEFAULT_PACKET,
        n => (n as usize).clamp(512, 32767),
    };
    let tds = l.tds_version.min(TDS74);
    w.env_database(&database, "master");
    w.info(&ServerMessage::info(
        5701,
        format!("Changed database context to '{database}'."),
        1,
    ));
    w.env_collation();
    w.env_language("us_english");
    w.info(&ServerMessage::info(
        5703,
        "Changed language setting to us_english.",
        1,
    ));
    w.login_ack(tds);
    w.env_packet_size(packet as u32, DEFAULT_PACKET as u32);
    w.done(0xFD, DONE_FINAL, 0);
    write_message(&mut s, PKT_REPLY, &w.out, packet).await?;
    let mut session = Session { database };

    loop {
        let msg = read_message(&mut s, packet).await?;
        if instance.faults().drop_connection {
            tracing::info!(
                server = instance.server_name(),
                "fault: dropping the TDS connection"
            );
            return Ok(());
        }
        let mut w = TokenWriter::new(instance.server_name());
        match msg.kind {
            PKT_SQL_BATCH => {
                let mut r = Reader::new(&msg.payload, "SQL batch");
                rpc::skip_all_headers(&mut r, true)?;
                let text = wire::decode_ucs2(r.bytes(r.remaining())?)?;
                let events = instance.execute(&mut session, &text, &[]);
                render(&mut w, events, false).await;
            }
            PKT_RPC => {
                let req = rpc::parse_rpc(&msg.payload, true)?;
                let events = run_rpc(&instance, &mut session, req);
                render(&mut w, events, true).await;
            }
            PKT_ATTENTION => w.done(0xFD, DONE_ATTN, 0),
            other => {
                return Err(WireError::Malformed(format!(
                    "unexpected packet type {other:#04x} after login"
                )))
            }
        }
        write_message(&mut s, PKT_REPLY, &w.out, packet).await?;
    }
}

/// `sp_executesql @stmt, @params, @P1 …`: the statement runs with its own database context, as
/// dynamic SQL does on SQL Server.
fn run_rpc(instance: &SqlInstance, session: &mut Session, req: rpc::RpcRequest) -> Vec<Event> {
    if !req.procedure.is_executesql() {
        return vec![
            Event::Error(ServerMessage::error(
                2812,
                16,
                format!(
                    "Could not find stored procedure '{}'.",
                    req.procedure.display()
                ),
                1,
            )),
            Event::Done {
                count: None,
                error: true,
            },
        ];
    }
    let mut params = req.params.into_iter();
    let stmt = match params.next().map(|p| p.value) {
        Some(Value::Text(s)) => s,
        _ => {
            return vec![
                Event::Error(ServerMessage::error(
                    214,
                    16,
                    "Procedure expects parameter '@statement' of type 'ntext/nchar/nvarchar'.",
                    1,
                )),
                Event::Done {
                    count: None,
                    error: true,
                },
            ]
        }
    };
    let _declarations = params.next();
    let values: Vec<(String, Value)> = params
        .map(|p| {
            (
                if p.name.starts_with('@') {
                    p.name
                } else {
                    format!("@{}", p.name)
                },
                p.value,
            )
        })
        .collect();
    let mut inner = session.clone();
    let mut events = instance.execute(&mut inner, &stmt, &values);
    if inner.database != session.database {
        events.push(Event::DatabaseChanged {
            old: inner.database,
            new: session.database.clone(),
        });
    }
    events
}

/// Encodes events as tokens. In an RPC, statement ends are DONEINPROC and the call ends with
/// RETURNSTATUS and DONEPROC.
async fn render(w: &mut TokenWriter, events: Vec<Event>, in_proc: bool) {
    let last_done = events.iter().rposition(|e| matches!(e, Event::Done { .. }));
    let any_error = events.iter().any(|e| matches!(e, Event::Error(_)));
    let closes = !in_proc && last_done.map(|i| i == events.len() - 1).unwrap_or(false);
    let n = events.len();
    for (i, e) in events.into_iter().enumerate() {
        match e {
            Event::Rows(rs) => w.result_set(&rs),
            Event::Info(m) => w.info(&m),
            Event::Error(m) => w.error(&m),
            Event::DatabaseChanged { old, new } => w.env_database(&new, &old),
            Event::Pause(d) => tokio::time::sleep(d).await,
            Event::Done { count, error } => {
                let mut status = if closes && i == n - 1 {
                    DONE_FINAL
                } else {
                    DONE_MORE
                };
                if error {
                    status |= DONE_ERROR;
                }
                if count.is_some() {
                    status |= DONE_COUNT;
                }
                w.done(
                    if in_proc { 0xFF } else { 0xFD },
                    status,
                    count.unwrap_or(0),
                );
            }
        }
    }
    if in_proc {
        w.return_status(if any_error { 1 } else { 0 });
        w.done(0xFE, if any_error { DONE_ERROR } else { DONE_FINAL }, 0);
    } else if !closes {
        w.done(0xFD, if any_error { DONE_ERROR } else { DONE_FINAL }, 0);
    }
}
