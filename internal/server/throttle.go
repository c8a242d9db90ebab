package server

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Per-source login throttling (issue 14). One client address gets freeLoginFailures
// failed logins, across all usernames, before it must wait: 1 s after the next failure,
// then 2 s, 4 s, … up to maxLoginBackoff. While it waits its attempts are refused with 429
// before any password is checked, so the right password does not get through either and
// the argon2 cost is not spent. Failures are forgotten loginFailureMemory after the last
// one. The store's lockout (per source and username) comes on top of this.
const (
	freeLoginFailures  = 5
	maxLoginBackoff    = 5 * time.Minute
	loginFailureMemory = 15 * time.Minute
	maxTrackedSources  = 10000
)

type loginThrottle struct {
	mu  sync.Mutex
	now func() time.Time
	by  map[string]*sourceFailures
}

type sourceFailures struct {
	failures int
	last     time.Time // of the last failure
	until    time.Time // no attempt is checked before this
}

// wait is how long source must wait before its next attempt is checked (0: now).
func (t *loginThrottle) wait(source string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.by[source]
	if f == nil {
		return 0
	}
	return max(0, f.until.Sub(t.clock()))
}

// failed counts a failed login from source and returns the backoff it now has.
func (t *loginThrottle) failed(source string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock()
	if t.by == nil {
		t.by = map[string]*sourceFailures{}
	}
	f := t.by[source]
	if f == nil || now.Sub(f.last) > loginFailureMemory {
		if len(t.by) >= maxTrackedSources {
			t.forget(now)
		}
		f = &sourceFailures{}
		t.by[source] = f
	}
	f.failures++
	f.last = now
	if over := f.failures - freeLoginFailures; over > 0 {
		backoff := time.Duration(math.Min(float64(maxLoginBackoff), float64(time.Second)*math.Pow(2, float64(min(over-1, 20)))))
		f.until = now.Add(backoff)
		return backoff
	}
	return 0
}

// forget drops sources whose failures are old; with the map still full, the oldest half.
func (t *loginThrottle) forget(now time.Time) {
	for s, f := range t.by {
		if now.Sub(f.last) > loginFailureMemory && now.After(f.until) {
			delete(t.by, s)
		}
	}
	for s := range t.by { // map order is random: an attacker cannot pick who stays
		if len(t.by) < maxTrackedSources/2 {
			break
		}
		delete(t.by, s)
	}
}

func (t *loginThrottle) clock() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}

// clientSource is the address a request comes from, for throttling and the lockout. Behind
// a TLS-terminating proxy (plain HTTP mode) it is the address the proxy appended last to
// X-Forwarded-For; otherwise the connection's peer (headers are the client's to forge).
func (s *Server) clientSource(r *http.Request) string {
	if s.cfg.PlainHTTP {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			if ip := net.ParseIP(strings.TrimSpace(parts[len(parts)-1])); ip != nil {
				return ip.String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// throttled answers 429 with Retry-After when source must still wait.
func throttled(w http.ResponseWriter, wait time.Duration) error {
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return errf(http.StatusTooManyRequests, "too many failed logins from this computer: try again in %s", humanSeconds(secs))
}

func humanSeconds(secs int) string {
	if secs < 120 {
		return fmt.Sprintf("%d s", secs)
	}
	return fmt.Sprintf("%d minutes", (secs+59)/60)
}
