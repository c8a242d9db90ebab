package doctor

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"scribe/internal/agent"
)

// AgentStale is how long an enrolled agent may go unseen before the gateway's doctor
// warns: a connected agent's last_seen_at is refreshed every minute.
const AgentStale = 10 * time.Minute

// checkAgentSide checks a room agent: its enrolment file, then one request to the gateway
// over the pinned TLS connection, which shows both that the gateway is reachable with the
// pinned certificate and whether the token is still accepted. A line that cannot be
// checked because an earlier one failed is left out: the failure above explains it.
func checkAgentSide(ctx context.Context, opt Options) []Result {
	path := opt.AgentConfig
	cfg, err := agent.LoadConfig(path)
	if err != nil {
		return []Result{fail("agent cfg", "%v", err)}
	}
	fi, _ := os.Stat(path)
	out := []Result{ok("agent cfg", "%s (mode %04o): agent %d of room %q, gateway %s", path, fi.Mode().Perm(), cfg.AgentID, cfg.RoomName, cfg.URL)}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return []Result{fail("agent cfg", "%s: gateway URL %q is not https://host:port; enrol again", path, cfg.URL)}
	}
	host := u.Host
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	hello, err := agent.Check(ctx, cfg)
	switch {
	case errors.Is(err, agent.ErrPinMismatch):
		return append(out, fail("gateway", "%s: %v, pinned %s. If the gateway's certificate was replaced, enrol this agent again (scribe agent enrol URL CODE); if not, something may be intercepting the connection: do not use this network until it is checked", host, err, cfg.Fingerprint))
	case errors.Is(err, agent.ErrUnreachable):
		return append(out, fail("gateway", "%v: is scribe serve running there, and is the port open from this room?", err))
	}
	// Any other answer came over a TLS connection with the pinned certificate.
	out = append(out, ok("gateway", "%s reachable; its TLS certificate matches the pinned fingerprint %s", host, cfg.Fingerprint))
	switch {
	case errors.Is(err, agent.ErrRefused):
		return append(out, fail("token", "%v", err))
	case err != nil:
		return append(out, fail("token", "not confirmed: %v", err))
	case hello.RoomName != cfg.RoomName:
		return append(out, warn("token", "accepted as agent %d %q of room %q (the config says room %q: the room was renamed)", hello.AgentID, hello.AgentName, hello.RoomName, cfg.RoomName))
	}
	return append(out, ok("token", "accepted as agent %d %q of room %q", hello.AgentID, hello.AgentName, hello.RoomName))
}

// checkAgents lists the enrolled, non-revoked room agents from the database (read-only,
// as checkDatabase), one line each: OK when seen within AgentStale, else a warning. The
// gateway's running process keeps last_seen_at fresh while an agent is connected; this
// separate process can only read it.
func checkAgents(ctx context.Context, opt Options) []Result {
	path := filepath.Join(opt.Config.DataDir, "scribe.db")
	if !fileExists(path) {
		return nil
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.ToSlash(path)+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		return []Result{fail("agent", "%s: %v", path, err)}
	}
	defer db.Close()
	var tables int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'agents'`).Scan(&tables); err != nil || tables == 0 {
		return nil // not a readable database (checkDatabase says so) or one from before agents
	}
	rows, err := db.QueryContext(ctx, `SELECT a.id, a.name, r.name, a.last_seen_at FROM agents a JOIN rooms r ON r.id = a.room_id
		WHERE a.revoked_at IS NULL ORDER BY r.name, a.id`)
	if err != nil {
		return []Result{fail("agent", "cannot list the room agents in %s: %v", path, err)}
	}
	defer rows.Close()
	now := opt.Now()
	var out []Result
	for rows.Next() {
		var id int64
		var name, room string
		var seen sql.NullInt64
		if err := rows.Scan(&id, &name, &room, &seen); err != nil {
			return append(out, fail("agent", "cannot read the room agents in %s: %v", path, err))
		}
		who := fmt.Sprintf("agent %d %q of room %q", id, name, room)
		if !seen.Valid {
			out = append(out, warn("agent", "%s never connected: start scribe agent run on the room box (and run scribe doctor --agent-config there)", who))
			continue
		}
		at := time.UnixMilli(seen.Int64)
		ago := now.Sub(at).Round(time.Second)
		if ago > AgentStale {
			out = append(out, warn("agent", "%s last seen %s ago (%s): is the box on and connected? scribe doctor --agent-config on it tells why", who, ago, at.Format(time.RFC3339)))
			continue
		}
		out = append(out, ok("agent", "%s last seen %s ago (%s)", who, max(ago, 0), at.Format(time.RFC3339)))
	}
	if err := rows.Err(); err != nil {
		return append(out, fail("agent", "cannot read the room agents in %s: %v", path, err))
	}
	if len(out) == 0 {
		return []Result{ok("agent", "no room agents enrolled")}
	}
	return out
}
