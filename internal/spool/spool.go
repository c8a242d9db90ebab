// Package spool keeps a consultation's audio on disk, encrypted, only while the clinician
// may still want to re-listen during review (retention "until-approved", at most 24 h).
//
// Deletion is by crypto-shredding. Each spool has a fresh random AES-256 key that lives
// only in this process's memory and is never written anywhere; the file holds nothing
// but AES-256-GCM records under that key. Overwriting the file before removing it would
// be pointless on SSDs (wear levelling and copy-on-write file systems keep old blocks we
// cannot reach), so the real deletion is forgetting the key: once Destroy drops it, or
// the process dies, the bytes left anywhere on the medium are unreadable. Destroy still
// removes the file so the space comes back and nothing looks like live data. Go gives no
// way to scrub the expanded key schedule inside crypto/aes, so Destroy zeroes the raw key
// and drops every reference; the garbage collector reclaims the rest.
//
// File format: a sequence of records, each a 4-byte big-endian length n followed by n
// bytes: a 12-byte random nonce and the GCM ciphertext of
//
//	uint16 id length | id | float64 start seconds | uint32 sample count | float32 samples
//
// (all little-endian), with additional data "scribe-spool|<session>|<record index>" so
// records cannot be moved between spools or reordered.
package spool

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxTTL is the longest any spool may live.
const MaxTTL = 24 * time.Hour

// Ext is the file name extension of spool files.
const Ext = ".spool"

// Errors callers tell apart with errors.Is.
var (
	ErrDestroyed = errors.New("audio spool has been destroyed")
	ErrNotFound  = errors.New("no audio spooled for that id")
	ErrCorrupt   = errors.New("audio spool record cannot be decrypted")
)

const maxRecordSamples = 30 * 60 * 16000 // 30 minutes at 16 kHz: far beyond any utterance

var validSession = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// openPaths holds the files of live spools in this process, so Sweep never removes one.
var openPaths sync.Map

type recordRef struct {
	index  uint64 // position in the file, bound into the AAD
	offset int64  // of the length prefix
	length uint32 // nonce + ciphertext
}

// Spool is one session's encrypted audio. It is safe for concurrent use.
type Spool struct {
	sessionID string
	path      string
	created   time.Time
	ttl       time.Duration

	mu      sync.Mutex
	key     []byte
	aead    cipher.AEAD // nil once destroyed
	f       *os.File
	size    int64
	records uint64
	index   map[string][]recordRef // utterance/segment id → its records, in order
}

// Open creates the spool file <dir>/<sessionID>.spool (mode 0600; dir is created 0700)
// with a fresh in-memory key. It fails if the file already exists: a leftover from a
// crash is unreadable and must be swept, not appended to. ttl must be in (0, MaxTTL].
func Open(dir, sessionID string, ttl time.Duration) (*Spool, error) {
	if !validSession.MatchString(sessionID) {
		return nil, fmt.Errorf("open audio spool: session id %q must be 1-128 letters, digits, _ or -", sessionID)
	}
	if ttl <= 0 || ttl > MaxTTL {
		return nil, fmt.Errorf("open audio spool: ttl %v must be positive and at most %v", ttl, MaxTTL)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open audio spool: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("open audio spool: key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("open audio spool: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("open audio spool: %w", err)
	}
	path := filepath.Join(dir, sessionID+Ext)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audio spool: %w", err)
	}
	openPaths.Store(absPath(path), true)
	return &Spool{sessionID: sessionID, path: path, created: time.Now(), ttl: ttl,
		key: key, aead: aead, f: f, index: map[string][]recordRef{}}, nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// Path is the spool file's path.
func (s *Spool) Path() string { return s.path }

// Expired reports whether the spool has outlived its ttl at now.
func (s *Spool) Expired(now time.Time) bool { return !now.Before(s.created.Add(s.ttl)) }

func (s *Spool) aad(index uint64) []byte {
	return []byte("scribe-spool|" + s.sessionID + "|" + strconv.FormatUint(index, 10))
}

// Append encrypts and writes one record of audio for id (an utterance or segment id)
// starting at start seconds. Appending the same id again adds to it; Read returns all of
// that id's samples in order.
func (s *Spool) Append(id string, start float64, samples []float32) error {
	if id == "" || len(id) > math.MaxUint16 {
		return fmt.Errorf("audio spool append: id must be 1-%d bytes", math.MaxUint16)
	}
	if len(samples) > maxRecordSamples {
		return fmt.Errorf("audio spool append %s: %d samples exceeds the %d per record", id, len(samples), maxRecordSamples)
	}
	plain := make([]byte, 0, 2+len(id)+8+4+4*len(samples))
	plain = binary.LittleEndian.AppendUint16(plain, uint16(len(id)))
	plain = append(plain, id...)
	plain = binary.LittleEndian.AppendUint64(plain, math.Float64bits(start))
	plain = binary.LittleEndian.AppendUint32(plain, uint32(len(samples)))
	for _, v := range samples {
		plain = binary.LittleEndian.AppendUint32(plain, math.Float32bits(v))
	}
	defer clear(plain)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aead == nil {
		return ErrDestroyed
	}
	ns := s.aead.NonceSize()
	rec := make([]byte, 4+ns, 4+ns+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(rec[4:]); err != nil {
		return fmt.Errorf("audio spool append: nonce: %w", err)
	}
	rec = s.aead.Seal(rec, rec[4:4+ns], plain, s.aad(s.records))
	binary.BigEndian.PutUint32(rec[:4], uint32(len(rec)-4))
	if _, err := s.f.WriteAt(rec, s.size); err != nil {
		// A partial record at the tail is harmless: the index only points at whole ones,
		// and the next append overwrites from the same offset.
		return fmt.Errorf("audio spool append %s: %w", id, err)
	}
	s.index[id] = append(s.index[id], recordRef{index: s.records, offset: s.size, length: uint32(len(rec) - 4)})
	s.size += int64(len(rec))
	s.records++
	return nil
}

// Read decrypts and returns every sample spooled for id, for re-listening during review.
func (s *Spool) Read(id string) ([]float32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aead == nil {
		return nil, ErrDestroyed
	}
	refs, ok := s.index[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	var out []float32
	for _, ref := range refs {
		gotID, _, samples, err := s.readRecord(ref)
		if err != nil {
			return nil, err
		}
		if gotID != id {
			return nil, fmt.Errorf("%w: record %d holds another id", ErrCorrupt, ref.index)
		}
		out = append(out, samples...)
	}
	return out, nil
}

// readRecord reads and decrypts one record; s.mu must be held.
func (s *Spool) readRecord(ref recordRef) (id string, start float64, samples []float32, err error) {
	buf := make([]byte, 4+int(ref.length))
	if _, err := s.f.ReadAt(buf, ref.offset); err != nil {
		return "", 0, nil, fmt.Errorf("audio spool read: %w", err)
	}
	if binary.BigEndian.Uint32(buf[:4]) != ref.length {
		return "", 0, nil, fmt.Errorf("%w: record %d length changed", ErrCorrupt, ref.index)
	}
	ns := s.aead.NonceSize()
	if int(ref.length) < ns+s.aead.Overhead() {
		return "", 0, nil, fmt.Errorf("%w: record %d too short", ErrCorrupt, ref.index)
	}
	plain, err := s.aead.Open(nil, buf[4:4+ns], buf[4+ns:], s.aad(ref.index))
	if err != nil {
		return "", 0, nil, fmt.Errorf("%w: record %d (written under another key, or altered)", ErrCorrupt, ref.index)
	}
	defer clear(plain)
	return decodeRecord(plain)
}

func decodeRecord(p []byte) (string, float64, []float32, error) {
	bad := fmt.Errorf("%w: malformed record", ErrCorrupt)
	if len(p) < 2 {
		return "", 0, nil, bad
	}
	n := int(binary.LittleEndian.Uint16(p))
	p = p[2:]
	if len(p) < n+12 {
		return "", 0, nil, bad
	}
	id := string(p[:n])
	start := math.Float64frombits(binary.LittleEndian.Uint64(p[n:]))
	count := int(binary.LittleEndian.Uint32(p[n+8:]))
	p = p[n+12:]
	if len(p) != 4*count {
		return "", 0, nil, bad
	}
	samples := make([]float32, count)
	for i := range samples {
		samples[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
	return id, start, samples, nil
}

// Destroy forgets the key and removes the file, returning how many bytes the file held
// (for the audio_deleted audit event). The key is gone even if removal fails, so the
// audio is unreadable either way. Destroying twice returns ErrDestroyed.
func (s *Spool) Destroy(reason string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aead == nil {
		return 0, ErrDestroyed
	}
	clear(s.key)
	s.key, s.aead, s.index = nil, nil, nil
	var size int64
	if fi, err := s.f.Stat(); err == nil {
		size = fi.Size()
	}
	closeErr := s.f.Close()
	rmErr := os.Remove(s.path)
	openPaths.Delete(absPath(s.path))
	if rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
		return 0, fmt.Errorf("destroy audio spool %s (%s): key destroyed, file left: %w", s.sessionID, reason, rmErr)
	}
	if closeErr != nil {
		slog.Warn("audio spool close failed", "session", s.sessionID, "err", closeErr)
	}
	slog.Info("audio spool destroyed", "session", s.sessionID, "bytes", size, "reason", reason)
	return size, nil
}

// Swept describes a spool file Sweep removed.
type Swept struct {
	SessionID string
	Bytes     int64
	Modified  time.Time
}

// Sweep removes every spool file in dir except those of spools open in this process.
// Call it at start-up: after a crash their keys are gone, so they are unreadable anyway,
// and removing them returns the space. The result feeds audio_deleted audit events.
// A missing dir is not an error.
func Sweep(dir string) ([]Swept, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sweep audio spools: %w", err)
	}
	var swept []Swept
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, Ext) {
			continue
		}
		path := filepath.Join(dir, name)
		if _, live := openPaths.Load(absPath(path)); live {
			continue
		}
		info, err := e.Info()
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		if err := os.Remove(path); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		swept = append(swept, Swept{SessionID: strings.TrimSuffix(name, Ext), Bytes: info.Size(), Modified: info.ModTime()})
	}
	if err := errors.Join(errs...); err != nil {
		return swept, fmt.Errorf("sweep audio spools: %w", err)
	}
	return swept, nil
}
