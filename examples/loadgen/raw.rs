//! `--mode raw`: the floor. The same ONC RPC records and the same XID
//! matching as peerwire, written directly on tokio, with none of its
//! deadlines, handler tasks or per-connection state machine.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};

use crate::caller::{CallFuture, Caller};
use crate::{ECHO, PROGRAM, VERSION};

/// Bytes of a call header with AUTH_NONE: xid, type, rpcvers, program,
/// version, procedure, cred (flavor, length), verf (flavor, length).
const CALL_HEADER: usize = 40;
/// Bytes of an accepted SUCCESS reply header with AUTH_NONE: xid, type,
/// reply_stat, verf (flavor, length), accept_stat.
const REPLY_HEADER: usize = 24;

/// Takes one whole single-fragment record off the front of `buf`.
fn take_record(buf: &mut BytesMut) -> Option<BytesMut> {
    if buf.len() < 4 {
        return None;
    }
    let header = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    assert!(header & 0x8000_0000 != 0, "raw mode expects one fragment");
    let len = (header & 0x7fff_ffff) as usize;
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return None;
    }
    buf.advance(4);
    Some(buf.split_to(len))
}

pub async fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut output = BytesMut::with_capacity(64 * 1024);
    loop {
        match reader.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while let Some(record) = take_record(&mut input) {
            let xid = &record[..4];
            let args = &record[CALL_HEADER..];
            output.put_u32(0x8000_0000 | (REPLY_HEADER + args.len()) as u32);
            output.put_slice(xid);
            output.put_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            output.put_slice(args);
        }
        if !output.is_empty() {
            if writer.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
    }
}

pub struct RawClient {
    shared: Arc<RawShared>,
}

struct RawShared {
    // Uncontended: every task runs on the client's one thread.
    pending: Mutex<HashMap<u32, oneshot::Sender<Bytes>>>,
    out: Mutex<BytesMut>,
    wake: Notify,
    next_xid: std::sync::atomic::AtomicU32,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let shared = Arc::new(RawShared {
            pending: Mutex::new(HashMap::new()),
            out: Mutex::new(BytesMut::with_capacity(64 * 1024)),
            wake: Notify::new(),
            next_xid: std::sync::atomic::AtomicU32::new(rand_xid()),
        });
        let s = shared.clone();
        tokio::spawn(async move {
            let mut spare = BytesMut::with_capacity(64 * 1024);
            loop {
                s.wake.notified().await;
                std::mem::swap(&mut *s.out.lock().unwrap(), &mut spare);
                if spare.is_empty() {
                    continue;
                }
                if writer.write_all(&spare).await.is_err() {
                    return;
                }
                spare.clear();
            }
        });
        let s = shared.clone();
        tokio::spawn(async move {
            let mut input = BytesMut::with_capacity(64 * 1024);
            loop {
                match reader.read_buf(&mut input).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                while let Some(record) = take_record(&mut input) {
                    let xid = u32::from_be_bytes([record[0], record[1], record[2], record[3]]);
                    let results = record.freeze().slice(REPLY_HEADER..);
                    if let Some(answer) = s.pending.lock().unwrap().remove(&xid) {
                        let _ = answer.send(results);
                    }
                }
            }
        });
        RawClient { shared }
    }
}

fn rand_xid() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.subsec_nanos())
}

impl Caller for RawClient {
    fn call(&self, args: Bytes) -> CallFuture<'_> {
        Box::pin(async move {
            let s = &self.shared;
            let xid = s
                .next_xid
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            s.pending.lock().unwrap().insert(xid, tx);
            {
                let mut out = s.out.lock().unwrap();
                out.reserve(4 + CALL_HEADER + args.len());
                out.put_u32(0x8000_0000 | (CALL_HEADER + args.len()) as u32);
                out.put_u32(xid);
                for word in [0, 2, PROGRAM, VERSION, ECHO, 0, 0, 0, 0] {
                    out.put_u32(word);
                }
                out.put_slice(&args);
            }
            s.wake.notify_one();
            match rx.await {
                Ok(results) => results.len() == args.len(),
                Err(_) => false,
            }
        })
    }
}
