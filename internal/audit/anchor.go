package audit

// Anchoring the chain outside the database (issue 14).
//
// The hash chain shows an edited, deleted, reordered or inserted entry, but not a tail
// cut off, nor a chain rewritten from some entry on with every later hash recomputed: the
// result is again a valid chain. A Checkpoint is a signed statement "the chain's entry N
// had hash H at time T", kept where someone rewriting the database does not reach it:
// the system journal, a checkpoint file, and every backup. CheckAnchors compares the
// chain with every checkpoint it is given: a checkpoint beyond the chain's end shows a
// truncation, one whose entry now has another hash shows a rewrite.
//
// Checkpoints are signed (Ed25519, with a key derived from the data key: see
// keys.Keyring.SignCheckpoint), so they cannot be made up by someone who can write the
// database but not read the data key. A checkpoint with a bad signature is ignored.

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// Problem kinds CheckAnchors reports.
const (
	Truncated = "truncated" // entries a checkpoint vouches for are gone from the end
	Rewritten = "rewritten" // an entry no longer has the hash a checkpoint recorded
)

// Checkpoint is a signed record of the chain's head at one moment.
type Checkpoint struct {
	Seq    int64  `json:"seq"`
	Hash   string `json:"hash"`
	At     string `json:"at"`  // RFC 3339, UTC
	Key    string `json:"key"` // signing key id, "v1"
	Sig    string `json:"sig"` // Ed25519 signature of message(), base64url without padding
	Source string `json:"-"`   // where it was found, for reports
}

// Signer makes checkpoint signatures (keys.Keyring).
type Signer interface {
	SignCheckpoint(msg []byte) (keyID string, sig []byte, err error)
}

// Verifier checks them (keys.Keyring).
type Verifier interface {
	VerifyCheckpoint(keyID string, msg, sig []byte) bool
}

// message is what the signature covers.
func (c Checkpoint) message() []byte {
	return []byte(fmt.Sprintf("scribe audit checkpoint v1\nseq=%d\nhash=%s\nat=%s\n", c.Seq, c.Hash, c.At))
}

// Valid reports whether c's signature is good.
func (c Checkpoint) Valid(v Verifier) bool {
	sig, err := base64.RawURLEncoding.DecodeString(c.Sig)
	return err == nil && v != nil && v.VerifyCheckpoint(c.Key, c.message(), sig)
}

func (c Checkpoint) String() string {
	s := fmt.Sprintf("the checkpoint of seq %d signed at %s", c.Seq, c.At)
	if c.Source != "" {
		s += " (from " + c.Source + ")"
	}
	return s
}

// Head returns the newest entry's seq and hash, without verifying the chain (0 and
// Genesis for an empty trail).
func Head(ctx context.Context, db *sql.DB) (int64, string, error) {
	var seq int64
	var hash string
	err := db.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, Genesis, nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("audit head: %w", err)
	}
	return seq, hash, nil
}

// NewCheckpoint signs the chain's current head in db.
func NewCheckpoint(ctx context.Context, db *sql.DB, s Signer, now time.Time) (Checkpoint, error) {
	seq, hash, err := Head(ctx, db)
	if err != nil {
		return Checkpoint{}, err
	}
	c := Checkpoint{Seq: seq, Hash: hash, At: now.UTC().Format(time.RFC3339Nano)}
	key, sig, err := s.SignCheckpoint(c.message())
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	c.Key, c.Sig = key, encodeSig(sig)
	return c, nil
}

func encodeSig(sig []byte) string { return base64.RawURLEncoding.EncodeToString(sig) }

// marker names checkpoint lines in a checkpoint file and in the journal.
const marker = "audit_checkpoint"

// Line is c as one JSON line, the checkpoint file's format.
func (c Checkpoint) Line() string {
	b, _ := json.Marshal(struct {
		Marker int `json:"audit_checkpoint"`
		Checkpoint
	}{1, c})
	return string(b)
}

// LogArgs are c's fields for a log/slog record ("audit checkpoint"), so that each
// checkpoint also reaches the system journal; ParseCheckpoints reads them back from
// slog's text or JSON output.
func (c Checkpoint) LogArgs() []any {
	return []any{marker, 1, "seq", c.Seq, "hash", c.Hash, "at", c.At, "key", c.Key, "sig", c.Sig}
}

var markerRE = regexp.MustCompile(`\b` + marker + `\b`)

var checkpointFields = func() map[string]*regexp.Regexp {
	m := map[string]*regexp.Regexp{}
	for name, value := range map[string]string{"seq": `[0-9]+`, "hash": `[0-9a-f]{64}`, "at": `[0-9TZ:.+-]+`, "key": `v[0-9]+`, "sig": `[A-Za-z0-9_-]+`} {
		m[name] = regexp.MustCompile(`(?:^|[\s{,])"?` + name + `"?[=:]"?(` + value + `)`)
	}
	return m
}()

// ParseCheckpoints reads the checkpoints in text: checkpoint file lines, or the journal's
// lines of slog text or JSON output. Lines without a checkpoint are skipped, and so are
// malformed ones; whether a checkpoint's signature is good is CheckAnchors' business.
func ParseCheckpoints(r io.Reader, source string) ([]Checkpoint, error) {
	var out []Checkpoint
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !markerRE.MatchString(line) {
			continue
		}
		get := func(name string) string {
			if m := checkpointFields[name].FindStringSubmatch(line); m != nil {
				return m[1]
			}
			return ""
		}
		seq, err := strconv.ParseInt(get("seq"), 10, 64)
		c := Checkpoint{Seq: seq, Hash: get("hash"), At: get("at"), Key: get("key"), Sig: get("sig"), Source: source}
		if err != nil || c.Hash == "" || c.At == "" || c.Key == "" || c.Sig == "" {
			continue
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read checkpoints from %s: %w", source, err)
	}
	return out, nil
}

// AppendCheckpointFile appends c to the checkpoint file at path (created 0600) and syncs it.
func AppendCheckpointFile(path string, c Checkpoint) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit checkpoint file: %w", err)
	}
	if _, err := f.WriteString(c.Line() + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("audit checkpoint file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("audit checkpoint file %s: %w", path, err)
	}
	return f.Close()
}

// ReadCheckpointFile reads the checkpoints in a file (a checkpoint file, or saved journal
// output); a missing file has none.
func ReadCheckpointFile(path string) ([]Checkpoint, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	defer f.Close()
	return ParseCheckpoints(f, path)
}

const checkpointSchema = `
CREATE TABLE IF NOT EXISTS audit_checkpoints (
	id   INTEGER PRIMARY KEY,
	seq  INTEGER NOT NULL,
	hash TEXT NOT NULL,
	at   TEXT NOT NULL,
	key  TEXT NOT NULL,
	sig  TEXT NOT NULL
);`

type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// SaveCheckpoint keeps c in db's audit_checkpoints table, so that every backup (a copy
// of the database) carries the checkpoints made before it.
func SaveCheckpoint(ctx context.Context, db execer, c Checkpoint) error {
	if _, err := db.ExecContext(ctx, checkpointSchema); err != nil {
		return fmt.Errorf("save audit checkpoint: %w", err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO audit_checkpoints(seq, hash, at, key, sig) VALUES (?, ?, ?, ?, ?)`, c.Seq, c.Hash, c.At, c.Key, c.Sig); err != nil {
		return fmt.Errorf("save audit checkpoint: %w", err)
	}
	return nil
}

// LoadCheckpoints reads the checkpoints kept in db (none when it has no such table).
func LoadCheckpoints(ctx context.Context, db *sql.DB, source string) ([]Checkpoint, error) {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_checkpoints'`).Scan(&n); err != nil || n == 0 {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT seq, hash, at, key, sig FROM audit_checkpoints ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("load audit checkpoints: %w", err)
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		c := Checkpoint{Source: source}
		if err := rows.Scan(&c.Seq, &c.Hash, &c.At, &c.Key, &c.Sig); err != nil {
			return nil, fmt.Errorf("load audit checkpoints: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// AnchorReport is the result of CheckAnchors.
type AnchorReport struct {
	Valid   int         // checkpoints with a good signature, all compared with the chain
	Invalid int         // checkpoints ignored: bad signature or unknown key
	Newest  *Checkpoint // the valid checkpoint of the highest seq (latest signed among equals)
	Problem *Problem    // Truncated or Rewritten; nil when every checkpoint matches
}

// CheckAnchors compares the chain in db with every checkpoint that v accepts, oldest
// seq first, and reports the first that no longer matches: one beyond the chain's end
// (Truncated) or one whose entry now has another hash (Rewritten).
func CheckAnchors(ctx context.Context, db *sql.DB, cps []Checkpoint, v Verifier) (AnchorReport, error) {
	var rep AnchorReport
	var valid []Checkpoint
	for _, c := range cps {
		if c.Valid(v) {
			valid = append(valid, c)
		} else {
			rep.Invalid++
		}
	}
	rep.Valid = len(valid)
	if len(valid) == 0 {
		return rep, nil
	}
	sort.SliceStable(valid, func(i, j int) bool {
		if valid[i].Seq != valid[j].Seq {
			return valid[i].Seq < valid[j].Seq
		}
		return valid[i].At < valid[j].At
	})
	newest := valid[len(valid)-1]
	rep.Newest = &newest
	end, _, err := Head(ctx, db)
	if err != nil {
		return rep, err
	}
	var good *Checkpoint
	for i := range valid {
		c := valid[i]
		if c.Seq == 0 {
			continue // an empty chain vouches for nothing
		}
		if c.Seq > end {
			rep.Problem = &Problem{Seq: end + 1, Kind: Truncated, Detail: fmt.Sprintf(
				"the chain ends at seq %d, but %s vouches for entries up to seq %d: %d entries were deleted from its end", end, c, c.Seq, c.Seq-end)}
			return rep, nil
		}
		var hash string
		err := db.QueryRowContext(ctx, `SELECT hash FROM audit_log WHERE seq = ?`, c.Seq).Scan(&hash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return rep, fmt.Errorf("audit anchors: %w", err)
		}
		if hash != c.Hash {
			p := Problem{Seq: 1, Kind: Rewritten, Detail: fmt.Sprintf("entry %d does not have the hash %s records: the chain was rewritten at or before seq %d", c.Seq, c, c.Seq)}
			if good != nil {
				p.Seq = good.Seq + 1
				p.Detail += fmt.Sprintf(" and after seq %d (which still matches %s)", good.Seq, *good)
			}
			rep.Problem = &p
			return rep, nil
		}
		good = &valid[i]
	}
	return rep, nil
}
