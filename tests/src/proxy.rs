//! A TCP proxy between a service and the broker, which a test can stall or cut.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Forwards both ways.
    Up,
    /// Keeps every socket open and forwards nothing (a hung link or a stalled peer):
    /// bytes pile up in the kernel's buffers until the link is up again.
    Stalled,
    /// Closes every connection and refuses new ones.
    Cut,
}

/// Forwards connections to `target`; dropping it closes everything.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    link: watch::Sender<Link>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (link, link_rx) = watch::channel(Link::Up);
        let task = tokio::spawn(async move {
            // Dropped (aborting every connection) when the proxy task is aborted.
            let mut connections = JoinSet::new();
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                if *link_rx.borrow() == Link::Cut {
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                let (up, down) = (link_rx.clone(), link_rx.clone());
                connections.spawn(async move {
                    // Either direction ending closes both: the peer sees the connection go.
                    tokio::select! {
                        () = pump(in_read, out_write, up) => {}
                        () = pump(out_read, in_write, down) => {}
                    }
                });
            }
        });
        Self { addr, link, task }
    }

    /// `host:port` to give the service instead of the broker's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut link: watch::Receiver<Link>) {
    let mut buf = vec![0_u8; 16 * 1024];
    loop {
        // While stalled nothing is read, so the sender's buffers fill as on a hung link.
        match link.wait_for(|l| *l != Link::Stalled).await.map(|l| *l) {
            Ok(Link::Up) => {}
            _ => return,
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = link.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        match link.wait_for(|l| *l != Link::Stalled).await.map(|l| *l) {
            Ok(Link::Up) => {}
            _ => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
