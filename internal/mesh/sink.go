package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"scribe/internal/fhir"
)

// SinkConfig configures the mesh sink.
type SinkConfig struct {
	Client *Client
	// To is the registered practice's MESH mailbox.
	To string
	// FHIR shapes the documents (identifier system, ODS code, codes).
	FHIR fhir.Config
	Log  *slog.Logger
	Now  func() time.Time
}

// Sink implements fhir.Sink and fhir.Acknowledger over MESH.
type Sink struct {
	cfg SinkConfig
}

// NewSink checks the configuration.
func NewSink(cfg SinkConfig) (*Sink, error) {
	if cfg.Client == nil || cfg.To == "" {
		return nil, errors.New("the mesh sink needs a MESH client and the practice's mailbox (to_mailbox)")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sink{cfg: cfg}, nil
}

// location is how a sent message is remembered in the outbox: its local id and MESH's
// message id ("mesh:LOCALID:MESSAGEID").
func location(localID, messageID string) string { return "mesh:" + localID + ":" + messageID }

func parseLocation(loc string) (localID, messageID string) {
	parts := strings.SplitN(strings.TrimPrefix(loc, "mesh:"), ":", 2)
	if len(parts) != 2 {
		return "", ""
	}
	return parts[0], parts[1]
}

// Deliver implements fhir.Sink: the note is looked up by its local id first (a message
// sent before a crash or a lost reply is found, never sent twice), then sent. The receipt
// is Pending: the practice's acknowledgements come later.
func (s *Sink) Deliver(ctx context.Context, n fhir.Note) (fhir.Receipt, error) {
	p, err := BuildPayload(n, s.cfg.FHIR, s.cfg.Client.cfg.Mailbox, s.cfg.Now())
	if err != nil {
		var ve *fhir.ValidationError
		if errors.As(err, &ve) {
			return fhir.Receipt{}, err
		}
		return fhir.Receipt{}, fhir.Permanent("the message could not be built", err)
	}
	waiting := "handed to MESH for the practice's mailbox; waiting for the practice's acknowledgement"
	t, err := s.cfg.Client.FindByLocalID(ctx, p.LocalID)
	switch {
	case errors.Is(err, ErrSeveral):
		return fhir.Receipt{}, fhir.Permanent("MESH holds several messages for this note; ask the practice to check for a duplicate, then retry", err)
	case err != nil:
		return fhir.Receipt{}, classify(err, "looking the note up in MESH")
	case t != nil:
		return fhir.Receipt{Location: location(p.LocalID, t.MessageID), Pending: true, Reason: waiting}, nil
	}
	id, err := s.cfg.Client.Send(ctx, Message{To: s.cfg.To, WorkflowID: WorkflowConsultReport, LocalID: p.LocalID,
		Subject: p.Subject, FileName: p.LocalID + ".json", ContentType: "application/fhir+json", Body: p.Body})
	if err != nil {
		return fhir.Receipt{}, classify(err, "sending the note through MESH")
	}
	return fhir.Receipt{Location: location(p.LocalID, id), Created: true, Pending: true, Reason: waiting}, nil
}

// classify maps a MESH failure onto the outbox: no answer or a server error may clear by
// itself; a refused login or a refused message needs a person.
func classify(err error, what string) error {
	var me *Error
	if !errors.As(err, &me) || me.Err != nil {
		return fhir.Retryable("MESH could not be reached while "+what, 0, err)
	}
	switch {
	case me.Status == http.StatusTooManyRequests || me.Status >= 500:
		return fhir.Retryable(fmt.Sprintf("MESH is busy or unavailable (HTTP %d) while %s", me.Status, what), 0, err)
	case me.Status == http.StatusUnauthorized || me.Status == http.StatusForbidden:
		return fhir.Permanent(fmt.Sprintf("MESH refused scribe's mailbox credentials (HTTP %d: %s); an administrator must check epr.mesh", me.Status, me.Description), err)
	}
	return fhir.Permanent(fmt.Sprintf("MESH refused the message (HTTP %d: %s) while %s", me.Status, me.Description, what), err)
}

// Acknowledgements implements fhir.Acknowledger: it reads scribe's MESH inbox for the
// practice's ITK3 responses and MESH's non-delivery reports. A message is acknowledged
// (removed from the inbox) only once the note it is about is no longer waiting, that is
// after the outbox recorded the outcome, so a crash in between loses nothing.
func (s *Sink) Acknowledgements(ctx context.Context, waiting []fhir.Waiting) ([]fhir.Ack, error) {
	type ref struct {
		doc     string
		localID string
	}
	byLocal, byMessage := map[string]ref{}, map[string]ref{}
	for _, w := range waiting {
		l, m := parseLocation(w.Location)
		byLocal[l] = ref{w.DocumentID, l}
		byMessage[m] = ref{w.DocumentID, l}
	}
	ids, err := s.cfg.Client.Inbox(ctx)
	if err != nil {
		return nil, err
	}
	acks := map[string]fhir.Ack{}
	var errs []error
	for _, id := range ids {
		m, err := s.cfg.Client.Download(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var r ref
		var found bool
		var ack fhir.Ack
		switch {
		case m.Type == "REPORT":
			if r, found = byMessage[m.LinkedMsgID]; !found {
				r, found = byLocal[m.LocalID]
			}
			ack = fhir.Ack{Outcome: fhir.AckRefused, Reason: fmt.Sprintf("MESH could not deliver it to the practice (%s %s); check the practice's mailbox, then retry",
				m.StatusCode, m.StatusText)}
		case m.WorkflowID == WorkflowConsultReportAck:
			resp, perr := ParseResponse(m.Body)
			if perr != nil {
				s.cfg.Log.Warn("mesh: unreadable acknowledgement left in the inbox", "mesh_message", id, "err", perr)
				continue
			}
			r, found = byLocal[resp.RespondsTo]
			ack.Outcome, ack.Reason = resp.Outcome()
		default:
			s.cfg.Log.Warn("mesh: unexpected message in scribe's inbox acknowledged and dropped", "mesh_message", id, "workflow", m.WorkflowID)
		}
		if !found {
			// About a note no longer waiting (its outcome is recorded) or not ours.
			if err := s.cfg.Client.Acknowledge(ctx, id); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		ack.DocumentID = r.doc
		if prev, ok := acks[r.doc]; !ok || prev.Outcome == fhir.AckWaiting {
			acks[r.doc] = ack
		}
	}
	out := make([]fhir.Ack, 0, len(acks))
	for _, a := range acks {
		out = append(out, a)
	}
	return out, errors.Join(errs...)
}
