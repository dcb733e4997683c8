package deliver

import "net"

// gatherConn is a TCP connection under TLS that can gather the records
// of one write into one system call. TLS writes each record of at most
// 16 KiB as a write of its own; a 35 KB message is then three system
// calls, and on loopback or a VM each wakes the server for a part of a
// message it can't use yet. Between gather and send, records are kept
// (up to gatherMax, then written as they come, so that a large message
// costs no more memory than that) and send writes them at once.
type gatherConn struct {
	net.Conn
	on  bool
	buf []byte
}

// gatherMax bounds what a gatherConn keeps before writing it.
const gatherMax = 64 << 10

// gather starts keeping what is written.
func (g *gatherConn) gather() { g.on = true }

// send writes what was kept, and ends the gathering.
func (g *gatherConn) send() error {
	g.on = false
	return g.drain()
}

func (g *gatherConn) drain() error {
	if len(g.buf) == 0 {
		return nil
	}
	_, err := g.Conn.Write(g.buf)
	g.buf = g.buf[:0]
	return err
}

func (g *gatherConn) Write(b []byte) (int, error) {
	if !g.on {
		return g.Conn.Write(b)
	}
	if len(g.buf)+len(b) > gatherMax {
		if err := g.drain(); err != nil {
			return 0, err
		}
		if len(b) > gatherMax {
			return g.Conn.Write(b)
		}
	}
	g.buf = append(g.buf, b...)
	return len(b), nil
}
