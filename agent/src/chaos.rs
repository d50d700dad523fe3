//! A TCP proxy that resets connections: put it between an orchestrator and an agent to see that
//! lost answers never turn into repeated actions. Used by the tests and available to the
//! simulator for network fault injection.
//!
//! Each accepted connection is, by a seeded random draw, passed through, reset at once, or
//! relayed until the agent has sent a random number of bytes and then reset (no FIN: a RST),
//! which lands anywhere from mid-handshake to mid-response.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    Pass,
    /// Reset as soon as the client connects.
    AtOnce,
    /// Relay this many bytes from the agent, then reset both sides.
    AfterAgentBytes(usize),
}

/// Counts kept by the proxy, by the label the classifier gave each connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub connections: usize,
    /// Label → connections reset (at once or mid-stream).
    pub resets: BTreeMap<String, usize>,
}

pub struct ResetProxy {
    pub addr: SocketAddr,
    stats: Arc<Mutex<ProxyStats>>,
    task: tokio::task::JoinHandle<()>,
}

type Classifier = Arc<dyn Fn() -> String + Send + Sync>;

impl ResetProxy {
    /// Listens on `listen` and forwards to `target`; `reset_percent` of connections are cut
    /// (a third of those at once). `classify` labels each new connection for the statistics
    /// (e.g. which phase of a call it carries).
    pub async fn start(
        listen: SocketAddr,
        target: SocketAddr,
        seed: u64,
        reset_percent: u32,
        classify: impl Fn() -> String + Send + Sync + 'static,
    ) -> std::io::Result<ResetProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Mutex::new(ProxyStats::default()));
        let classify: Classifier = Arc::new(classify);
        let task = tokio::spawn(accept_loop(
            listener,
            target,
            seed,
            reset_percent.min(100),
            classify,
            stats.clone(),
        ));
        Ok(ResetProxy { addr, stats, task })
    }

    pub fn stats(&self) -> ProxyStats {
        match self.stats.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl Drop for ResetProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    seed: u64,
    reset_percent: u32,
    classify: Classifier,
    stats: Arc<Mutex<ProxyStats>>,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let draw = rng.gen_range(0..300u32);
        let cut = if draw >= reset_percent * 3 {
            Cut::Pass
        } else if draw < reset_percent {
            Cut::AtOnce
        } else {
            Cut::AfterAgentBytes(rng.gen_range(1..3000))
        };
        let label = classify();
        if let Ok(mut s) = stats.lock() {
            s.connections += 1;
            if cut != Cut::Pass {
                *s.resets.entry(label).or_default() += 1;
            }
        }
        tokio::spawn(relay(client, target, cut));
    }
}

#[allow(deprecated)] // set_linger: the one way to send a RST instead of a FIN.
async fn relay(client: TcpStream, target: SocketAddr, cut: Cut) {
    if cut == Cut::AtOnce {
        let _ = client.set_linger(Some(Duration::ZERO));
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else {
        let _ = client.set_linger(Some(Duration::ZERO));
        return;
    };
    if let Cut::AfterAgentBytes(_) = cut {
        let _ = client.set_linger(Some(Duration::ZERO));
    }
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
    });
    let limit = match cut {
        Cut::AfterAgentBytes(n) => n,
        _ => usize::MAX,
    };
    let mut sent = 0usize;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match sr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let take = n.min(limit - sent);
        if cw.write_all(&buf[..take]).await.is_err() {
            break;
        }
        sent += take;
        if sent >= limit {
            // No FIN: forget the write half and drop the read half; linger 0 makes it a RST.
            cw.forget();
            up.abort();
            return;
        }
    }
    let _ = cw.shutdown().await;
}
