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

	"scribe/internal/config"
	"scribe/internal/fhir"
	"scribe/internal/keys"
	"scribe/internal/metrics"
	"scribe/internal/outbox"
	"scribe/internal/server"
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
