package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mattn/go-sqlite3"
	"golang.org/x/crypto/argon2"

	"scribe/internal/audit"
	"scribe/internal/identifiers"
)

// Role is what a user may do. Clinicians record and review their own consultations;
// admins manage rooms and users but never read transcripts; the clinical safety officer
// (cso) and auditors are for the monitoring views.
type Role string

const (
	RoleClinician Role = "clinician"
	RoleAdmin     Role = "admin"
	RoleCSO       Role = "cso"
	RoleAuditor   Role = "auditor"
)

// ParseRole accepts the four role names.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleClinician, RoleAdmin, RoleCSO, RoleAuditor:
		return r, nil
	}
	return "", fmt.Errorf("%w: unknown role %q (want clinician, admin, cso or auditor)", ErrInvalid, s)
}

// User is an account. The password hash never leaves the store.
type User struct {
	ID          int64  `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	Role        Role   `json:"role"`
	GMCNumber   string `json:"gmc_number,omitempty"`
	SDSUserID   string `json:"sds_user_id,omitempty"`
	// RegistrationBody (NMC, GPhC, HCPC) and RegistrationNumber identify non-doctors.
	RegistrationBody   string    `json:"registration_body,omitempty"`
	RegistrationNumber string    `json:"registration_number,omitempty"`
	Disabled           bool      `json:"disabled"`
	CreatedAt          time.Time `json:"created_at"`
}

// NewUser is what CreateUser needs.
type NewUser struct {
	Username    string
	DisplayName string
	Role        Role
	Password    string
	GMCNumber   string
	SDSUserID   string
	// RegistrationBody and RegistrationNumber: NMC, GPhC or HCPC registration.
	RegistrationBody   string
	RegistrationNumber string
}

// MinPasswordLength is the shortest password CreateUser accepts.
const MinPasswordLength = 10

// Argon2id parameters (OWASP's 19 MiB, t=2, p=1 profile): slow enough to hurt guessing,
// quick enough for a login on a practice box.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

func hashPassword(pw string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

func checkPassword(encoded, pw string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("stored password hash has an unknown format")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errors.New("stored password hash has an unknown argon2 version")
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, fmt.Errorf("stored password hash parameters: %w", err)
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("stored password salt: %w", err)
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil {
		return false, fmt.Errorf("stored password key: %w", err)
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func validUsername(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("%w: username must be 1 to 64 characters", ErrInvalid)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' || r == '@') {
			return fmt.Errorf("%w: username %q may contain only letters, digits, '.', '-', '_' and '@'", ErrInvalid, s)
		}
	}
	return nil
}

// CreateUser adds an account. There is no default password: the caller must supply one
// of at least MinPasswordLength characters.
func (s *Store) CreateUser(ctx context.Context, nu NewUser) (User, error) {
	if err := validUsername(nu.Username); err != nil {
		return User{}, err
	}
	if _, err := ParseRole(string(nu.Role)); err != nil {
		return User{}, err
	}
	if utf8.RuneCountInString(nu.Password) < MinPasswordLength {
		return User{}, fmt.Errorf("%w: password must be at least %d characters", ErrInvalid, MinPasswordLength)
	}
	if strings.TrimSpace(nu.DisplayName) == "" {
		nu.DisplayName = nu.Username
	}
	if err := normaliseIdentifiers(&nu); err != nil {
		return User{}, err
	}
	h, err := hashPassword(nu.Password)
	if err != nil {
		return User{}, err
	}
	now := s.now()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	defer tx.Rollback()
	if err := identifiersFree(ctx, tx, nu); err != nil {
		return User{}, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO users(username, display_name, role, password_hash, gmc_number, sds_user_id,
		registration_body, registration_number, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		nu.Username, nu.DisplayName, nu.Role, h, nu.GMCNumber, nu.SDSUserID, nu.RegistrationBody, nu.RegistrationNumber, ms(now))
	if err != nil {
		var se sqlite3.Error
		if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
			return User{}, fmt.Errorf("%w: username %q is taken", ErrConflict, nu.Username)
		}
		return User{}, fmt.Errorf("create user: %w", err)
	}
	id, _ := res.LastInsertId()
	if err := s.auditTx(ctx, tx, audit.Event{Action: audit.ActionUserChange,
		Details: map[string]any{"change": "user_created", "user_id": id, "username": nu.Username, "role": string(nu.Role)}}); err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return s.User(ctx, id)
}

// normaliseIdentifiers checks a new user's professional identifiers (each optional: GMC
// number, SDS user id, NMC/GPhC/HCPC registration; see internal/identifiers) and keeps
// them in their normal form.
func normaliseIdentifiers(nu *NewUser) error {
	invalid := func(err error) error { return fmt.Errorf("%w: %w", ErrInvalid, err) }
	if nu.GMCNumber = identifiers.Normalize(nu.GMCNumber); nu.GMCNumber != "" {
		if err := identifiers.Check(identifiers.GMC, nu.GMCNumber); err != nil {
			return invalid(err)
		}
	}
	if nu.SDSUserID = identifiers.Normalize(nu.SDSUserID); nu.SDSUserID != "" {
		if err := identifiers.CheckSDS(nu.SDSUserID); err != nil {
			return invalid(err)
		}
	}
	nu.RegistrationNumber = identifiers.Normalize(nu.RegistrationNumber)
	if nu.RegistrationBody == "" && nu.RegistrationNumber == "" {
		return nil
	}
	body, err := identifiers.ParseBody(nu.RegistrationBody)
	if err != nil {
		return invalid(err)
	}
	if err := identifiers.Check(body, nu.RegistrationNumber); err != nil {
		return invalid(err)
	}
	nu.RegistrationBody = string(body)
	return nil
}

// identifiersFree refuses a GMC number, SDS user id or registration another account
// already has: notes are filed under these, so two accounts with one would let one author
// in the other's name.
func identifiersFree(ctx context.Context, tx *sql.Tx, nu NewUser) error {
	for _, f := range []struct {
		where, name, v string
		args           []any
	}{
		{"gmc_number = ?", "GMC number", nu.GMCNumber, []any{nu.GMCNumber}},
		{"sds_user_id = ?", "SDS user ID", nu.SDSUserID, []any{nu.SDSUserID}},
		{"registration_body = ? AND registration_number = ?", nu.RegistrationBody + " number", nu.RegistrationNumber, []any{nu.RegistrationBody, nu.RegistrationNumber}},
	} {
		if f.v == "" {
			continue
		}
		var holder string
		err := tx.QueryRowContext(ctx, `SELECT username FROM users WHERE `+f.where, f.args...).Scan(&holder)
		if err == nil {
			return fmt.Errorf("%w: the %s %s already belongs to the account %q", ErrConflict, f.name, f.v, holder)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("create user: %w", err)
		}
	}
	return nil
}

// SetPassword replaces a user's password.
func (s *Store) SetPassword(ctx context.Context, userID int64, pw string) error {
	if utf8.RuneCountInString(pw) < MinPasswordLength {
		return fmt.Errorf("%w: password must be at least %d characters", ErrInvalid, MinPasswordLength)
	}
	h, err := hashPassword(pw)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, h, userID)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("user %d: %w", userID, ErrNotFound)
	}
	// A new password ends every existing login.
	if _, err = tx.ExecContext(ctx, `DELETE FROM login_sessions WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	if err := s.auditTx(ctx, tx, audit.Event{Action: audit.ActionUserChange,
		Details: map[string]any{"change": "password_set", "user_id": userID}}); err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	return tx.Commit()
}

const userCols = `id, username, display_name, role, gmc_number, sds_user_id, registration_body, registration_number, disabled, created_at`

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var created int64
	err := row.Scan(&u.ID, &u.Username, &u.DisplayName, &u.Role, &u.GMCNumber, &u.SDSUserID, &u.RegistrationBody, &u.RegistrationNumber, &u.Disabled, &created)
	u.CreatedAt = fromMS(created)
	return u, err
}

// User returns the user with the given id.
func (s *Store) User(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %d: %w", id, ErrNotFound)
	}
	return u, err
}

// UserByName returns the user with the given username.
func (s *Store) UserByName(ctx context.Context, name string) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE username = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	return u, err
}

// Users lists all accounts by username.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// CountUsers returns how many accounts exist (zero on a fresh install).
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n)
	return n, err
}

// Authenticate checks a username and password tried from source (the client's address;
// "" for a local command). Unknown users and wrong passwords give the same
// ErrBadCredential, and both cost an argon2 computation so timing does not tell them apart.
func (s *Store) Authenticate(ctx context.Context, username, password, source string) (User, error) {
	var hash string
	var id int64
	var disabled bool
	err := s.db.QueryRowContext(ctx, `SELECT id, password_hash, disabled FROM users WHERE username = ?`, username).Scan(&id, &hash, &disabled)
	if errors.Is(err, sql.ErrNoRows) {
		hashPassword(password) // equalise timing with the known-user path
		// The name typed is not kept: it may be a password typed into the wrong box.
		if err := s.AuditOrDefer(ctx, audit.Event{Actor: "unknown-user", Action: audit.ActionLoginFailed, Details: map[string]any{"reason": "unknown username", "source": source}}); err != nil {
			return User{}, fmt.Errorf("authenticate: %w", err)
		}
		return User{}, ErrBadCredential
	}
	if err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	ok, err := checkPassword(hash, password)
	if err != nil {
		return User{}, fmt.Errorf("authenticate %q: %w", username, err)
	}
	if locked, err := s.lockedOut(ctx, username, source); err != nil {
		return User{}, err
	} else if locked {
		// Even the right password is refused while locked, so guessing gains nothing.
		if err := s.AuditOrDefer(ctx, audit.Event{Actor: username, Action: audit.ActionLoginFailed, Details: map[string]any{"reason": "locked", "source": source}}); err != nil {
			return User{}, fmt.Errorf("authenticate: %w", err)
		}
		return User{}, ErrLocked
	}
	if !ok || disabled {
		return User{}, s.loginFailed(ctx, username, source, disabled)
	}
	if err := s.loginSucceeded(ctx, username, source); err != nil {
		return User{}, err
	}
	return s.User(ctx, id)
}

// LoginPolicy bounds a login: MaxAge from login, Idle since last use.
type LoginPolicy struct {
	MaxAge time.Duration
	Idle   time.Duration
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// CreateLogin starts a login session for the user and returns its bearer token (sent as a
// cookie); only the token's hash is stored.
func (s *Store) CreateLogin(ctx context.Context, userID int64, p LoginPolicy) (string, time.Time, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", time.Time{}, fmt.Errorf("login token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	now := s.now()
	exp := now.Add(p.MaxAge)
	err := s.writeLogin(ctx, token, userID, now, exp)
	if StorageFailure(err) {
		// The disk is full: the login works from memory and is written, with its audit
		// entry, once the disk takes writes again (FlushDeferred).
		s.keepLoginInMemory(token, userID, now, exp)
		s.deferred.addEvent(audit.Event{At: now, Actor: s.usernameOf(ctx, userID), Action: audit.ActionLogin, Details: map[string]any{"kept_in_memory": true}})
		return token, exp, nil
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("create login: %w", err)
	}
	// Housekeeping: drop expired logins.
	s.db.ExecContext(ctx, `DELETE FROM login_sessions WHERE expires_at < ? OR last_seen_at < ?`, ms(now), ms(now.Add(-p.Idle)))
	return token, exp, nil
}

func (s *Store) writeLogin(ctx context.Context, token string, userID int64, now, exp time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `INSERT INTO login_sessions(token_hash, user_id, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		tokenHash(token), userID, ms(now), ms(now), ms(exp))
	if err != nil {
		return err
	}
	if err := s.auditTx(ctx, tx, audit.Event{Actor: usernameTx(ctx, tx, userID), Action: audit.ActionLogin}); err != nil {
		return err
	}
	return tx.Commit()
}

// usernameOf names a user for the audit trail, outside a transaction.
func (s *Store) usernameOf(ctx context.Context, userID int64) string {
	if u, err := s.User(ctx, userID); err == nil {
		return u.Username
	}
	return fmt.Sprintf("user:%d", userID)
}

// LoginUser returns the user a token belongs to, refreshing its idle timer. Expired,
// idle, unknown tokens and disabled users give ErrNotFound.
func (s *Store) LoginUser(ctx context.Context, token string, p LoginPolicy) (User, error) {
	return s.loginUser(ctx, token, p, true)
}

func (s *Store) loginUser(ctx context.Context, token string, p LoginPolicy, touch bool) (User, error) {
	now := s.now()
	h := tokenHash(token)
	var userID, created, lastSeen, expires int64
	err := s.db.QueryRowContext(ctx, `SELECT user_id, created_at, last_seen_at, expires_at FROM login_sessions WHERE token_hash = ?`, h).Scan(&userID, &created, &lastSeen, &expires)
	switch {
	case err == nil && s.endedInMemory(h, userID, fromMS(created)): // logged out while the disk was full
		return User{}, fmt.Errorf("login: %w", ErrNotFound)
	case errors.Is(err, sql.ErrNoRows):
		var ok bool
		if userID, ok = s.memLoginUser(h, p, touch); !ok { // made while the disk was full?
			return User{}, fmt.Errorf("login: %w", ErrNotFound)
		}
	case err != nil:
		return User{}, fmt.Errorf("login: %w", err)
	case now.UnixMilli() > expires || now.Sub(fromMS(lastSeen)) > p.Idle:
		s.db.ExecContext(ctx, `DELETE FROM login_sessions WHERE token_hash = ?`, h)
		return User{}, fmt.Errorf("login expired: %w", ErrNotFound)
	case touch && now.Sub(fromMS(lastSeen)) > 30*time.Second:
		// Only write when the idle timer moved noticeably, to spare the database on every request.
		s.db.ExecContext(ctx, `UPDATE login_sessions SET last_seen_at = ? WHERE token_hash = ?`, ms(now), h)
	}
	u, err := s.User(ctx, userID)
	if err != nil {
		return User{}, err
	}
	if u.Disabled {
		return User{}, fmt.Errorf("login: user disabled: %w", ErrNotFound)
	}
	return u, nil
}

// DeleteLogin ends a login session (logout). A disk that refuses the write does not keep
// the login alive: it ends in memory and the database catches up later.
func (s *Store) DeleteLogin(ctx context.Context, token string) error {
	s.forgetMemLogins(tokenHash(token), 0)
	err := s.deleteLogin(ctx, token)
	if StorageFailure(err) {
		s.endLoginsInMemory(tokenHash(token), 0)
		s.deferred.addEvent(audit.Event{At: s.now(), Actor: actorFrom(ctx), Action: audit.ActionLogout})
		return nil
	}
	return err
}

func (s *Store) deleteLogin(ctx context.Context, token string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	defer tx.Rollback()
	var userID int64
	err = tx.QueryRowContext(ctx, `SELECT user_id FROM login_sessions WHERE token_hash = ?`, tokenHash(token)).Scan(&userID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // already gone: nothing to end, nothing to record
	}
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM login_sessions WHERE token_hash = ?`, tokenHash(token)); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if err := s.auditTx(ctx, tx, audit.Event{Actor: usernameTx(ctx, tx, userID), Action: audit.ActionLogout}); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return tx.Commit()
}
