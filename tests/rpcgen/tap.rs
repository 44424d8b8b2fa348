//! A relay on loopback that passes one TCP connection's bytes through
//! unchanged and records the record marking (RFC 5531 §11) it sees in each
//! direction: the tests' way to see how libtirpc, or peerwire, cut a
//! record into fragments.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The two directions through the tap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the side that connected to the tap: calls.
    Calls,
    /// Back to it: replies.
    Replies,
}

/// One direction's record marking, parsed as bytes pass.
#[derive(Debug, Default)]
struct Marks {
    /// Header bytes of the next fragment read so far (0 to 3).
    header: Vec<u8>,
    /// Data bytes left in the current fragment, and whether it is the
    /// record's last; `None` between fragments.
    fragment: Option<(u32, bool)>,
    /// The lengths of the fragments of the record in progress.
    current: Vec<u32>,
    /// Whole records: each its fragments' data lengths, the last one
    /// being the fragment marked last.
    records: Vec<Vec<u32>>,
}

impl Marks {
    /// Reads `data`; returns how many records it completed.
    fn feed(&mut self, mut data: &[u8]) -> usize {
        let mut completed = 0;
        while !data.is_empty() {
            match &mut self.fragment {
                None => {
                    let take = (4 - self.header.len()).min(data.len());
                    self.header.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.header.len() == 4 {
                        let word = u32::from_be_bytes(self.header[..].try_into().unwrap());
                        self.header.clear();
                        let len = word & 0x7fff_ffff;
                        self.current.push(len);
                        self.fragment = Some((len, word & 0x8000_0000 != 0));
                    }
                }
                Some((left, _)) => {
                    let take = (*left as usize).min(data.len());
                    *left -= take as u32;
                    data = &data[take..];
                }
            }
            if let Some((0, last)) = self.fragment {
                self.fragment = None;
                if last {
                    self.records.push(std::mem::take(&mut self.current));
                    completed += 1;
                }
            }
        }
        completed
    }
}

#[derive(Debug, Default)]
struct Log {
    calls: Marks,
    replies: Marks,
    /// The most records seen towards the server but not yet back: how many
    /// calls were in flight at once, as far as the tap can tell.
    most_outstanding: usize,
}

/// A relay from a loopback port of its own to `target`, for one
/// connection. Dropping it stops the relay.
pub struct Tap {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

impl Tap {
    /// Listens on `listen` (port 0: any) and relays the first connection
    /// to `target`. Must be called inside a tokio runtime.
    pub async fn start(listen: SocketAddr, target: SocketAddr) -> Tap {
        let listener = TcpListener::bind(listen).await.expect("tap listener");
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let task = tokio::spawn({
            let log = log.clone();
            async move {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = TcpStream::connect(target).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::join!(
                    pump(client_read, server_write, &log, Direction::Calls),
                    pump(server_read, client_write, &log, Direction::Replies),
                );
            }
        });
        Tap { addr, log, task }
    }

    /// Where to connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The whole records that passed in `direction` so far, each as its
    /// fragments' lengths.
    pub fn records(&self, direction: Direction) -> Vec<Vec<u32>> {
        let log = self.log.lock().unwrap();
        match direction {
            Direction::Calls => log.calls.records.clone(),
            Direction::Replies => log.replies.records.clone(),
        }
    }

    /// The most calls seen passing towards the server before replies to
    /// them came back.
    pub fn most_outstanding(&self) -> usize {
        self.log.lock().unwrap().most_outstanding
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, parsing the record marking on the way, until
/// either side ends; then passes the end on.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    log: &Mutex<Log>,
    direction: Direction,
) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut log = log.lock().unwrap();
            match direction {
                Direction::Calls => {
                    log.calls.feed(&buf[..n]);
                }
                Direction::Replies => {
                    log.replies.feed(&buf[..n]);
                }
            }
            let outstanding = log
                .calls
                .records
                .len()
                .saturating_sub(log.replies.records.len());
            log.most_outstanding = log.most_outstanding.max(outstanding);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The parser itself, on fragments cut by hand: the tap's own check.
pub fn tap_parses_record_marking() {
    let mut marks = Marks::default();
    let mut wire = Vec::new();
    // A record of 5 + 0 (last) bytes, then one of 3 bytes (last).
    wire.extend_from_slice(&5u32.to_be_bytes());
    wire.extend_from_slice(b"hello");
    wire.extend_from_slice(&0x8000_0000u32.to_be_bytes());
    wire.extend_from_slice(&0x8000_0003u32.to_be_bytes());
    wire.extend_from_slice(b"abc");
    // Byte by byte: every split of a header and of the data.
    let completed: usize = wire
        .iter()
        .map(|b| marks.feed(std::slice::from_ref(b)))
        .sum();
    assert_eq!(completed, 2);
    assert_eq!(marks.records, vec![vec![5, 0], vec![3]]);
    // An empty record, whole in one read.
    assert_eq!(marks.feed(&0x8000_0000u32.to_be_bytes()), 1);
    assert_eq!(marks.records.last(), Some(&vec![0]));
    assert!(marks.current.is_empty() && marks.fragment.is_none());
}
