//! A TCP proxy on loopback that a test can cut and restore: the way to take a server (here
//! Postgres) away from one process without touching the server every other test uses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

pub struct Proxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    held: Arc<AtomicBool>,
    connections: Arc<Mutex<JoinSet<()>>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards a free loopback port to `target` (`host:port`).
    pub async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let down = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let acceptor = {
            let (down, held, connections) = (
                Arc::clone(&down),
                Arc::clone(&held),
                Arc::clone(&connections),
            );
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if down.load(Ordering::SeqCst) {
                        // The port stays ours; the connection is refused by closing it.
                        drop(client);
                        continue;
                    }
                    if held.load(Ordering::SeqCst) {
                        // Accepted and never answered, as by a server that hangs.
                        connections.lock().await.spawn(async move {
                            let _client = client;
                            std::future::pending::<()>().await;
                        });
                        continue;
                    }
                    let target = target.clone();
                    connections.lock().await.spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
            })
        };
        Proxy {
            port,
            down,
            held,
            connections,
            acceptor,
        }
    }

    /// Ends every open connection and refuses new ones until [`Proxy::restore`].
    pub async fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.connections.lock().await.abort_all();
    }

    /// Ends every open connection; new ones are accepted and never answered.
    pub async fn hang(&self) {
        self.held.store(true, Ordering::SeqCst);
        self.connections.lock().await.abort_all();
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
        self.held.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}
