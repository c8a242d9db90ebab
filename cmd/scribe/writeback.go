package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"scribe/internal/config"
	"scribe/internal/fhir"
	"scribe/internal/keys"
	"scribe/internal/mesh"
	"scribe/internal/metrics"
	"scribe/internal/outbox"
	"scribe/internal/server"
	"scribe/internal/store"
)

// writeBack connects approval to the EPR: the approval transaction enqueues the note in
// the outbox, and the worker delivers it through the configured sink, exactly once.
type writeBack struct {
	db      *sql.DB
	fhir    fhir.Config // the configuration notes are approved under
	worker  *outbox.Worker
	metrics *metrics.Metrics // nil: no metrics
}

// countingSink tells the metrics about every delivery attempt.
type countingSink struct {
	fhir.Sink
	wb *writeBack
}

func (c countingSink) Deliver(ctx context.Context, n fhir.Note) (fhir.Receipt, error) {
	rc, err := c.Sink.Deliver(ctx, n)
	if err != nil && c.wb.metrics != nil {
		c.wb.metrics.OutboxFailure()
	}
	return rc, err
}

// Backlog counts approved notes not yet in the record: queued, sending, awaiting an
// acknowledgement or held.
func (wb *writeBack) Backlog(ctx context.Context) (int, error) {
	c, err := outbox.Counts(ctx, wb.db)
	return c[outbox.StateQueued] + c[outbox.StateSending] + c[outbox.StateAwaiting] + c[outbox.StateHeld], err
}

// Failed counts notes whose delivery gave up.
func (wb *writeBack) Failed(ctx context.Context) (int, error) {
	c, err := outbox.Counts(ctx, wb.db)
	return c[outbox.StateFailed], err
}

func newWriteBack(ctx context.Context, cfg config.Config, db *sql.DB, kr *keys.Keyring) (*writeBack, error) {
	if err := outbox.EnsureSchema(ctx, db); err != nil {
		return nil, err
	}
	if kr != nil {
		outbox.UseSealer(kr) // queued notes hold the approved text and NHS number
	}
	sink, err := newSink(cfg)
	if err != nil {
		return nil, err
	}
	wb := &writeBack{db: db, fhir: fhirConfig(cfg)}
	wb.worker = outbox.NewWorker(db, countingSink{Sink: sink, wb: wb}, slog.Default().With("component", "outbox"))
	wb.worker.Acks, _ = sink.(fhir.Acknowledger) // folder and MESH confirm after delivery
	if cfg.EPR.Sink == "mesh" && cfg.EPR.MESH.PollInterval > 0 {
		wb.worker.AckInterval = cfg.EPR.MESH.PollInterval
	}
	if ss, ok := sink.(*fhir.ServerSink); ok {
		// Read the EPR's CapabilityStatement now, so the log says at start whether it
		// honours conditional create; the sink reads it again before the first delivery
		// if this fails. Bounded by its own timeout and by ctx.
		go func() {
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			log := slog.Default().With("component", "outbox")
			if cond, err := ss.Probe(pctx); err != nil {
				log.Warn("EPR CapabilityStatement not read at start; read again before the first delivery", "err", err)
			} else {
				log.Info("EPR CapabilityStatement read", "conditional_create", cond,
					"exactly_once_by", map[bool]string{true: "If-None-Exist", false: "search by identifier before each create"}[cond])
			}
		}()
	}
	return wb, nil
}

func fhirConfig(cfg config.Config) fhir.Config {
	coding := func(c config.Coding) fhir.Coding {
		return fhir.Coding{System: c.System, Code: c.Code, Display: c.Display}
	}
	return fhir.Config{IdentifierSystem: cfg.EPR.IdentifierSystem, PracticeODS: cfg.EPR.PracticeODS,
		Category: coding(cfg.EPR.Category), PracticeSetting: coding(cfg.EPR.PracticeSetting)}
}

func newSink(cfg config.Config) (fhir.Sink, error) {
	fc := fhirConfig(cfg)
	if cfg.EPR.Sink == "folder" {
		dir := cfg.EPR.Folder
		if dir == "" {
			dir = filepath.Join(cfg.DataDir, "export")
		}
		for _, d := range []string{dir, filepath.Join(dir, fhir.CollectedDir), filepath.Join(dir, fhir.RejectedDir)} {
			if err := os.MkdirAll(d, 0o750); err != nil {
				return nil, fmt.Errorf("epr folder: %w", err)
			}
		}
		return &fhir.FolderSink{Dir: dir, Config: fc, Group: cfg.EPR.FolderGroup,
			Retention: time.Duration(cfg.EPR.FolderRetentionDays) * 24 * time.Hour}, nil
	}
	if cfg.EPR.Sink == "mesh" {
		return newMESHSink(cfg.EPR.MESH, fc)
	}
	sc := fhir.ServerConfig{BaseURL: cfg.EPR.FHIRBaseURL, Config: fc, LookupPatient: cfg.EPR.LookupPatient}
	if f := cfg.EPR.BearerTokenFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("epr bearer token: %w", err)
		}
		sc.BearerToken = strings.TrimSpace(string(b))
	}
	if s := cfg.EPR.SMART; s.TokenURL != "" {
		key, err := fhir.LoadPrivateKey(s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("epr SMART key: %w", err)
		}
		sc.SMART = &fhir.SMARTConfig{TokenURL: s.TokenURL, ClientID: s.ClientID, Key: key, KeyID: s.KeyID, Scopes: s.Scopes}
	}
	if m := cfg.EPR.MTLS; m.Cert != "" {
		tc, err := fhir.MutualTLSConfig(m.Cert, m.Key, m.CA)
		if err != nil {
			return nil, fmt.Errorf("epr mutual TLS: %w", err)
		}
		sc.TLS = tc
	}
	return fhir.NewServerSink(sc)
}

// newMESHSink sends notes as GP Connect Send Document messages through a MESH mailbox.
func newMESHSink(m config.MESH, fc fhir.Config) (fhir.Sink, error) {
	secret := func(what, path string) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("epr mesh %s: %w", what, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	password, err := secret("password_file", m.PasswordFile)
	if err != nil {
		return nil, err
	}
	key, err := secret("shared_key_file", m.SharedKey)
	if err != nil {
		return nil, err
	}
	cc := mesh.ClientConfig{URL: m.URL, Mailbox: m.Mailbox, Password: password, SharedKey: key}
	if m.TLS.Cert != "" {
		if cc.TLS, err = fhir.MutualTLSConfig(m.TLS.Cert, m.TLS.Key, m.TLS.CA); err != nil {
			return nil, fmt.Errorf("epr mesh tls: %w", err)
		}
	}
	client, err := mesh.NewClient(cc)
	if err != nil {
		return nil, err
	}
	return mesh.NewSink(mesh.SinkConfig{Client: client, To: m.ToMailbox, FHIR: fc, Log: slog.Default().With("component", "mesh")})
}

// onApproved runs inside the approval transaction.
func (wb *writeBack) onApproved(ctx context.Context, tx *sql.Tx, n server.ApprovedNote) error {
	system := wb.fhir.IdentifierSystem
	if system == "" {
		system = fhir.DefaultIdentifierSystem
	}
	_, err := outbox.Enqueue(ctx, tx, fhir.Note{
		// The identifier system is frozen with the note: with the document id it is the
		// idempotency key on the EPR, which a later configuration change must not move.
		DocumentID: n.DocumentID, IdentifierSystem: system, SessionID: n.SessionID, NHSNumber: n.NHSNumber,
		Clinician: fhir.Clinician{DisplayName: n.ClinicianName, SDSUserID: n.ClinicianSDSUserID, GMCNumber: n.ClinicianGMC,
			RegistrationBody: n.ClinicianRegistrationBody, RegistrationNumber: n.ClinicianRegistrationNumber},
		ConsultationStart: n.ConsultationStart, ConsultationEnd: n.ConsultationStop, ApprovedAt: n.ApprovedAt,
		Text:  n.Text,
		Title: "Consultation transcript",
		Description: fmt.Sprintf("Transcript of a consultation in %s, reviewed and approved by %s. Transcription only: not a clinical summary.",
			n.RoomName, n.ClinicianName),
	})
	if err == nil {
		// Delivery starts once the approval has committed (the request's context ends
		// after the handler returns); an early wake would only find nothing to do.
		context.AfterFunc(ctx, wb.worker.Wake)
	}
	return err
}

// deliveryState shows a session's write-back state in the UI.
func (wb *writeBack) deliveryState(ctx context.Context, sessionID string) (string, string) {
	items, err := outbox.List(ctx, wb.db, outbox.Filter{SessionID: sessionID, Limit: 1})
	if err != nil || len(items) == 0 {
		return "", ""
	}
	return string(items[0].State), items[0].Reason
}

// Deliveries lists the outbox for admins, without note text.
func (wb *writeBack) Deliveries(ctx context.Context, state string) ([]server.Delivery, error) {
	items, err := outbox.List(ctx, wb.db, outbox.Filter{State: outbox.State(state)})
	if err != nil {
		return nil, err
	}
	out := make([]server.Delivery, len(items))
	for i, it := range items {
		out[i] = server.Delivery{ID: it.ID, SessionID: it.SessionID, DocumentID: it.DocumentID, State: string(it.State),
			Reason: it.Reason, Attempts: it.Attempts, UpdatedAt: it.UpdatedAt}
	}
	return out, nil
}

// RetryDelivery re-queues a held or failed note and wakes the worker.
func (wb *writeBack) RetryDelivery(ctx context.Context, id int64) error {
	if err := outbox.Retry(ctx, wb.db, id); err != nil {
		return err
	}
	wb.worker.Wake()
	return nil
}

// FixNHSNumber implements server.NoteCorrections: the session's original note, not yet in
// the record, gets the number and is queued again (its document id, the idempotency key,
// stays).
func (wb *writeBack) FixNHSNumber(ctx context.Context, tx *sql.Tx, sessionID, nhs string) error {
	items, err := outbox.List(ctx, tx, outbox.Filter{SessionID: sessionID})
	if err != nil {
		return err
	}
	for _, it := range items {
		if it.Kind != outbox.KindNote {
			continue
		}
		switch it.State {
		case outbox.StateQueued, outbox.StateHeld, outbox.StateFailed:
		default:
			return fmt.Errorf("%w: the note is %s; once it is in the record, correct the patient by amending it", server.ErrDelivered, it.State)
		}
		n := it.Note
		n.NHSNumber = nhs
		if err := outbox.ReplaceNote(ctx, tx, it.ID, n); err != nil {
			return fmt.Errorf("%w: %v", server.ErrDelivered, err)
		}
		return nil
	}
	return fmt.Errorf("%w: the session has no note on its way to the record", server.ErrDelivered)
}

// delivered returns the session's latest version in the record (the original or an
// amendment), refusing while another correction is still on its way or after withdrawal.
func delivered(ctx context.Context, tx *sql.Tx, sessionID string) (outbox.Item, error) {
	items, err := outbox.List(ctx, tx, outbox.Filter{SessionID: sessionID}) // newest first
	if err != nil {
		return outbox.Item{}, err
	}
	for _, it := range items {
		if it.State != outbox.StateSent {
			what := "the note"
			if it.Kind != outbox.KindNote {
				what = "the last correction (" + string(it.Kind) + ")"
			}
			return outbox.Item{}, fmt.Errorf("%w: %s is not in the record yet (%s); wait for it, or fix it first", server.ErrDelivered, what, it.State)
		}
		switch it.Kind {
		case outbox.KindWithdraw:
			return outbox.Item{}, fmt.Errorf("%w: the note was withdrawn", server.ErrDelivered)
		case outbox.KindNote, outbox.KindAmend:
			return it, nil
		}
	}
	return outbox.Item{}, fmt.Errorf("%w: the session has no note in the record", server.ErrDelivered)
}

// Amend implements server.NoteCorrections: a new document (its own id) that replaces the
// latest delivered version.
func (wb *writeBack) Amend(ctx context.Context, tx *sql.Tx, sessionID string, a server.Amendment) (string, error) {
	cur, err := delivered(ctx, tx, sessionID)
	if err != nil {
		return "", err
	}
	n := cur.Note
	n.DocumentID = uuid.NewString()
	n.ReplacesDocumentID, n.WithdrawsDocumentID = cur.DocumentID, ""
	n.Text, n.Reason = a.Text, a.Reason
	if a.NHSNumber != "" {
		n.NHSNumber = a.NHSNumber
	}
	n.Clinician = clinicianOf(a.Clinician)
	n.ApprovedAt = time.Now()
	n.Title = "Consultation transcript (amended)"
	if _, err := outbox.EnqueueCorrection(ctx, tx, n, a.Actor); err != nil {
		return "", err
	}
	return n.DocumentID, nil
}

// Withdraw implements server.NoteCorrections: the latest delivered version is marked
// entered-in-error. The withdrawal carries a copy of that note so that every route can
// say what is withdrawn.
func (wb *writeBack) Withdraw(ctx context.Context, tx *sql.Tx, sessionID, reason, actor string) (string, error) {
	cur, err := delivered(ctx, tx, sessionID)
	if err != nil {
		return "", err
	}
	n := cur.Note
	n.DocumentID = uuid.NewString()
	n.WithdrawsDocumentID, n.ReplacesDocumentID = cur.DocumentID, ""
	n.Reason = reason
	if _, err := outbox.EnqueueCorrection(ctx, tx, n, actor); err != nil {
		return "", err
	}
	return n.DocumentID, nil
}

// Versions implements server.NoteCorrections for the session's own clinician.
func (wb *writeBack) Versions(ctx context.Context, sessionID string) ([]server.NoteVersion, error) {
	items, err := outbox.List(ctx, wb.db, outbox.Filter{SessionID: sessionID})
	if err != nil {
		return nil, err
	}
	out := make([]server.NoteVersion, len(items))
	for i, it := range items {
		out[i] = server.NoteVersion{DocumentID: it.DocumentID, Kind: string(it.Kind), State: string(it.State), Reason: it.Reason,
			RelatedDocumentID: it.RelatedDocumentID, Text: it.Note.Text, CreatedAt: it.CreatedAt, SentAt: it.SentAt}
		if it.Kind == outbox.KindWithdraw {
			out[i].Text = ""
		}
	}
	return out, nil
}

// Corrections implements server.NoteCorrections for the CSO: no text, no NHS number.
func (wb *writeBack) Corrections(ctx context.Context) ([]server.Correction, error) {
	items, err := outbox.List(ctx, wb.db, outbox.Filter{Corrections: true, Limit: 500})
	if err != nil {
		return nil, err
	}
	out := make([]server.Correction, len(items))
	for i, it := range items {
		out[i] = server.Correction{ID: it.ID, SessionID: it.SessionID, DocumentID: it.DocumentID, Kind: string(it.Kind),
			State: string(it.State), DeliveryReason: it.Reason, RelatedDocumentID: it.RelatedDocumentID, Actor: it.Actor,
			Reason: it.Note.Reason, CreatedAt: it.CreatedAt, SentAt: it.SentAt}
	}
	return out, nil
}

// Wake implements server.NoteCorrections.
func (wb *writeBack) Wake() { wb.worker.Wake() }

// clinicianOf is how the record names an approving or amending clinician.
func clinicianOf(u store.User) fhir.Clinician {
	return fhir.Clinician{DisplayName: u.DisplayName, SDSUserID: u.SDSUserID, GMCNumber: u.GMCNumber,
		RegistrationBody: u.RegistrationBody, RegistrationNumber: u.RegistrationNumber}
}
