#!/usr/bin/env python3
"""Capture ONC RPC (RFC 5531) test vectors from real rpcbind and glusterd.

Standard library only. Writes raw TCP byte streams (one direction per file,
record-marking headers included) next to this script. Run it inside the
private namespaces described in README.md (never against a real network):

  python3 tests/data/capture.py rpcbind    # needs rpcbind -f on 127.0.0.1:111
  python3 tests/data/capture.py glusterd   # needs glusterd -N on 127.0.0.1:24007

`rpcbind` mode puts a recording TCP relay (127.0.0.1:4111, universal address
127.0.0.1.16.15) between `rpcinfo -T tcp -a ... 100000 2` and rpcbind, then
sends its own portmapper v2 DUMP call. `glusterd` mode sends GF-DUMP calls.
Every reply is decoded and printed so it can be checked by eye.
"""
import os, socket, struct, subprocess, sys, threading

OUT = os.path.dirname(os.path.abspath(__file__))
RELAY_PORT = 4111  # = 16*256 + 15


def save(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    print(f"wrote {name}: {len(data)} bytes")


def split_records(stream):
    """Split a byte stream into records; each record keeps its fragment headers."""
    recs, i, start = [], 0, 0
    while i + 4 <= len(stream):
        (hdr,) = struct.unpack_from(">I", stream, i)
        i += 4 + (hdr & 0x7FFFFFFF)
        if hdr & 0x80000000:
            recs.append(stream[start:i]); start = i
    return recs


def payload(record):
    """Concatenate fragment bodies of one record."""
    out, i = b"", 0
    while i < len(record):
        (hdr,) = struct.unpack_from(">I", record, i)
        out += record[i + 4:i + 4 + (hdr & 0x7FFFFFFF)]; i += 4 + (hdr & 0x7FFFFFFF)
    return out


def call(xid, prog, vers, proc, args=b""):
    """One CALL with AUTH_NONE cred and verf, sent as a single last fragment."""
    body = struct.pack(">10I", xid, 0, 2, prog, vers, proc, 0, 0, 0, 0) + args
    return struct.pack(">I", 0x80000000 | len(body)) + body


def rpc_exchange(port, msg):
    """Send one call record, read exactly one reply record."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(msg)
        reply = b""
        while True:
            hdr = s.recv(4, socket.MSG_WAITALL); reply += hdr
            (n,) = struct.unpack(">I", hdr)
            reply += s.recv(n & 0x7FFFFFFF, socket.MSG_WAITALL)
            if n & 0x80000000:
                return reply


class X:
    """Minimal XDR reader."""
    def __init__(self, b): self.b, self.i = b, 0
    def u32(self): v = struct.unpack_from(">I", self.b, self.i)[0]; self.i += 4; return v
    def i32(self): v = struct.unpack_from(">i", self.b, self.i)[0]; self.i += 4; return v
    def u64(self): v = struct.unpack_from(">Q", self.b, self.i)[0]; self.i += 8; return v
    def opaque(self):
        n = self.u32(); v = self.b[self.i:self.i + n]; self.i += (n + 3) & ~3; return v


def reply_header(record):
    """Decode an accepted reply header; return (reader at results, text)."""
    x = X(payload(record))
    xid, mtype, rstat = x.u32(), x.u32(), x.u32()
    txt = f"xid={xid:#x} msg_type={mtype} reply_stat={rstat}"
    if rstat == 0:
        flav = x.u32(); body = x.opaque(); astat = x.u32()
        txt += f" verf=({flav},{body.hex() or 'empty'}) accept_stat={astat}"
    return x, txt


def relay_once(listener, c2s, s2c):
    """Accept one client, connect to rpcbind, record both directions until EOF."""
    cli, _ = listener.accept()
    srv = socket.create_connection(("127.0.0.1", 111))
    def pump(a, b, buf):
        try:
            while (d := a.recv(65536)):
                buf.append(d); b.sendall(d)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # peer already gone; what was read is recorded
    t = threading.Thread(target=pump, args=(srv, cli, s2c)); t.start()
    pump(cli, srv, c2s); t.join(); cli.close(); srv.close()


def via_relay(*rpcinfo_args):
    """Run rpcinfo against the relay; return (client->server, server->client) bytes."""
    ls = socket.create_server(("127.0.0.1", RELAY_PORT))
    c2s, s2c = [], []
    th = threading.Thread(target=relay_once, args=(ls, c2s, s2c)); th.start()
    cmd = ["rpcinfo", "-T", "tcp", "-a", "127.0.0.1.16.15", *rpcinfo_args]
    print("$", " ".join(cmd)); subprocess.run(cmd); th.join(); ls.close()
    calls, replies = b"".join(c2s), b"".join(s2c)
    for r in split_records(calls):
        print("  call xid=%#x type=%d rpcvers=%d prog=%d vers=%d proc=%d"
              % struct.unpack_from(">6I", payload(r)))
    for r in split_records(replies):
        x, txt = reply_header(r); print("  reply", txt, "rest:", x.b[x.i:].hex())
    return calls, replies


def do_rpcbind():
    calls, replies = via_relay("100000", "2")
    assert len(split_records(calls)) == 1, "rpcinfo sent more than one call"
    save("rpcinfo_null_call.bin", split_records(calls)[0])
    save("rpcbind_null_reply.bin", split_records(replies)[0])
    calls, replies = via_relay("100000", "5")  # unsupported version: PROG_MISMATCH
    save("rpcinfo_v5_null_call.bin", calls); save("rpcbind_prog_mismatch_reply.bin", replies)
    calls, replies = via_relay("100000")  # no version: probes v0, then each version
    save("rpcinfo_probe_calls_stream.bin", calls)
    save("rpcbind_probe_replies_stream.bin", replies)
    # Portmapper v2 DUMP (proc 4), built here.
    req = call(0x50570004, 100000, 2, 4)
    rep = rpc_exchange(111, req)
    save("portmap_dump_call.bin", req); save("rpcbind_dump_reply.bin", rep)
    x, txt = reply_header(rep); print("DUMP reply", txt)
    while x.u32():
        print("  prog=%d vers=%d prot=%d port=%d" % (x.u32(), x.u32(), x.u32(), x.u32()))


def do_glusterd():
    prog, port = 123451501, 24007
    req = call(0x50570101, prog, 1, 1, struct.pack(">Q", 0xCAFE))
    rep = rpc_exchange(port, req)
    save("glusterd_gf_dump_call.bin", req); save("glusterd_gf_dump_reply.bin", rep)
    x, txt = reply_header(rep); print("GF-DUMP DUMP reply", txt)
    print(f"  gfs_id={x.u64():#x} op_ret={x.i32()} op_errno={x.i32()}")
    progs = []
    while x.u32():
        progs.append((x.opaque().decode(), x.u64(), x.u64()))
        print("  %r %d v%d" % progs[-1])
    assert x.i == len(x.b), "trailing bytes"
    assert ("GlusterD svc peer", 1238437, 2) in progs
    req = call(0x50570102, prog, 1, 2)
    rep = rpc_exchange(port, req)
    save("glusterd_gf_ping_call.bin", req); save("glusterd_gf_ping_reply.bin", rep)
    x, txt = reply_header(rep); print("GF-DUMP PING reply", txt)
    print(f"  op_ret={x.i32()} op_errno={x.i32()} xdata={x.opaque().hex() or 'empty'}")
    req = call(0x50570100, prog, 1, 0)
    rep = rpc_exchange(port, req)
    save("glusterd_null_call.bin", req); save("glusterd_null_reply.bin", rep)
    x, txt = reply_header(rep); print("GF-DUMP NULL reply", txt, "rest:", x.b[x.i:].hex())


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    {"rpcbind": do_rpcbind, "glusterd": do_glusterd}.get(mode, lambda: sys.exit(__doc__))()
