// Package agenttest holds test support for room agents: a TCP path between agent and
// gateway that a test can cut, as a pulled network cable does.
package agenttest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// NetCut forwards TCP from Addr to a target. While cut it closes every open connection
// and refuses new ones.
type NetCut struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// NewNetCut listens on a loopback port and forwards to target until the test ends.
func NewNetCut(t testing.TB, target string) *NetCut {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &NetCut{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.Set(true)
		p.wg.Wait()
	})
	return p
}

// Addr is the address agents dial instead of the gateway's.
func (p *NetCut) Addr() string { return p.ln.Addr().String() }

// accept runs until the listener closes (at cleanup).
func (p *NetCut) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		for _, pair := range [][2]net.Conn{{c, up}, {up, c}} {
			p.wg.Add(1)
			go func() { // one direction: ends when either side closes
				defer p.wg.Done()
				io.Copy(pair[0], pair[1])
				pair[0].Close()
				pair[1].Close()
			}()
		}
	}
}

// Set cuts the path (closing every connection) or restores it.
func (p *NetCut) Set(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}
