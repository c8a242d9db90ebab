package fhir

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"
	"golang.org/x/oauth2"

	"scribe/internal/nhsnumber"
)

// ServerConfig configures delivery to an R4 FHIR server.
type ServerConfig struct {
	// BaseURL is the FHIR base, e.g. https://epr.example/fhir/R4.
	BaseURL string
	Config  Config
	// LookupPatient resolves the NHS number to the server's Patient first and holds the
	// note when there is no single match.
	LookupPatient bool

	// Authentication: at most one of BearerToken and SMART; TLS may carry a client
	// certificate for mutual TLS on its own or alongside either.
	BearerToken string
	SMART       *SMARTConfig
	TLS         *tls.Config

	// Timeout bounds each HTTP exchange (default 30 s).
	Timeout time.Duration
	// Transport replaces the default transport (tests, proxies); TLS is then ignored.
	Transport http.RoundTripper
}

// ServerSink delivers notes to a FHIR server with conditional create, so repeating a
// delivery can never create a second DocumentReference.
type ServerSink struct {
	base   *url.URL
	cfg    ServerConfig
	client *http.Client
	now    func() time.Time
}

// NewServerSink checks the configuration and prepares the HTTP client.
func NewServerSink(cfg ServerConfig) (*ServerSink, error) {
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("FHIR base URL %q must be an absolute http(s) URL", cfg.BaseURL)
	}
	if cfg.BearerToken != "" && cfg.SMART != nil {
		return nil, fmt.Errorf("FHIR auth: choose a static bearer token or SMART backend services, not both")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	transport := cfg.Transport
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.TLS != nil {
			t.TLSClientConfig = cfg.TLS.Clone()
		}
		transport = t
	}
	switch {
	case cfg.BearerToken != "":
		transport = bearerTransport{token: cfg.BearerToken, base: transport}
	case cfg.SMART != nil:
		ts, err := cfg.SMART.TokenSource(&http.Client{Transport: transport, Timeout: cfg.Timeout})
		if err != nil {
			return nil, err
		}
		transport = &oauth2.Transport{Source: ts, Base: transport}
	}
	return &ServerSink{
		base:   base,
		cfg:    cfg,
		client: &http.Client{Transport: transport, Timeout: cfg.Timeout},
		now:    time.Now,
	}, nil
}

type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// Deliver implements Sink: optional Patient lookup, conditional create of the new
// DocumentReference, and for an amendment, marking the replaced one superseded.
func (s *ServerSink) Deliver(ctx context.Context, n Note) (Receipt, error) {
	if err := Validate(n, s.cfg.Config); err != nil {
		return Receipt{}, err
	}
	var opts BuildOptions
	if s.cfg.LookupPatient {
		id, err := s.findPatient(ctx, n.NHSNumber)
		if err != nil {
			return Receipt{}, err
		}
		opts.PatientID = id
	}
	var old map[string]any
	if n.ReplacesDocumentID != "" {
		var err error
		old, err = s.findDocument(ctx, n.ReplacesDocumentID)
		if err != nil {
			return Receipt{}, err
		}
		if old == nil {
			return Receipt{}, permanent("the document this amendment replaces is not on the patient record yet (deliver the original first, then retry)", nil)
		}
		opts.ReplacesID, _ = old["id"].(string)
	}
	doc, err := BuildDocumentReference(n, s.cfg.Config, opts)
	if err != nil {
		return Receipt{}, err
	}
	body, err := MarshalDocumentReference(doc)
	if err != nil {
		return Receipt{}, permanent("the document could not be encoded", err)
	}
	hdr := http.Header{"If-None-Exist": {IdentifierQuery(s.cfg.Config, n.DocumentID)}}
	resp, err := s.do(ctx, http.MethodPost, s.endpoint("DocumentReference", nil), hdr, body)
	if err != nil {
		return Receipt{}, err
	}
	if resp.status == http.StatusPreconditionFailed {
		return Receipt{}, permanent("the patient record holds several documents with this note's identifier; ask the EPR supplier to remove the duplicates", nil)
	}
	if err := s.classify(resp, "the patient record refused the document"); err != nil {
		return Receipt{}, err
	}
	rc := Receipt{Created: resp.status == http.StatusCreated, Location: s.location(resp, "DocumentReference"), HTTPStatus: resp.status}
	if old != nil && old["status"] != "superseded" {
		if err := s.supersede(ctx, old); err != nil {
			return Receipt{}, err
		}
	}
	return rc, nil
}

// findPatient returns the logical id of the one Patient with this NHS number.
func (s *ServerSink) findPatient(ctx context.Context, nhs string) (string, error) {
	digits, _ := nhsnumber.Normalize(nhs) // validated by the caller
	q := url.Values{"identifier": {SystemNHSNumber + "|" + digits}}
	entries, err := s.search(ctx, "Patient", q, "looking up the patient")
	if err != nil {
		return "", err
	}
	shown := nhsnumber.Format(digits)
	switch len(entries) {
	case 0:
		return "", permanent(fmt.Sprintf("held: no patient with NHS number %s on the EPR (check the number, or register the patient first)", shown), nil)
	case 1:
	default:
		return "", permanent(fmt.Sprintf("held: %d patients with NHS number %s on the EPR; the record must be merged before the note can be filed", len(entries), shown), nil)
	}
	var p r4.Patient
	if err := json.Unmarshal(entries[0], &p); err != nil || p.Id == nil {
		return "", permanent("the EPR's patient search returned an unreadable Patient", err)
	}
	for _, id := range p.Identifier {
		if id.System != nil && *id.System == SystemNHSNumber && id.Value != nil && strings.ReplaceAll(*id.Value, " ", "") == digits {
			return *p.Id, nil
		}
	}
	return "", permanent(fmt.Sprintf("held: the EPR's patient search for NHS number %s returned a patient with a different NHS number", shown), nil)
}

// findDocument returns the raw JSON of our DocumentReference with this document id, or nil.
// It stays a map so that writing it back keeps fields our R4 structs do not model.
func (s *ServerSink) findDocument(ctx context.Context, documentID string) (map[string]any, error) {
	q := url.Values{"identifier": {s.cfg.Config.withDefaults().IdentifierSystem + "|" + documentID}}
	entries, err := s.search(ctx, "DocumentReference", q, "looking up the document being amended")
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	if len(entries) > 1 {
		return nil, permanent("the patient record holds several copies of the document being amended; ask the EPR supplier to remove the duplicates", nil)
	}
	var m map[string]any
	if err := json.Unmarshal(entries[0], &m); err != nil {
		return nil, permanent("the EPR returned an unreadable DocumentReference", err)
	}
	return m, nil
}

// supersede marks a replaced DocumentReference as superseded, guarded by its version so a
// concurrent edit on the EPR is not overwritten.
func (s *ServerSink) supersede(ctx context.Context, old map[string]any) error {
	id, _ := old["id"].(string)
	if id == "" {
		return permanent("the document being amended has no id on the EPR", nil)
	}
	old["status"] = "superseded"
	body, err := json.Marshal(old)
	if err != nil {
		return permanent("the replaced document could not be encoded", err)
	}
	hdr := http.Header{}
	if meta, ok := old["meta"].(map[string]any); ok {
		if v, ok := meta["versionId"].(string); ok && v != "" {
			hdr.Set("If-Match", `W/"`+v+`"`)
		}
	}
	resp, err := s.do(ctx, http.MethodPut, s.endpoint("DocumentReference/"+url.PathEscape(id), nil), hdr, body)
	if err != nil {
		return err
	}
	if resp.status == http.StatusPreconditionFailed || resp.status == http.StatusConflict {
		// Someone changed the old document meanwhile: retrying re-reads it.
		return retryable("the replaced document changed on the EPR while it was being superseded", 0, nil)
	}
	return s.classify(resp, "the patient record refused to mark the replaced document superseded")
}

func (s *ServerSink) search(ctx context.Context, resourceType string, q url.Values, what string) ([]json.RawMessage, error) {
	resp, err := s.do(ctx, http.MethodGet, s.endpoint(resourceType, q), nil, nil)
	if err != nil {
		return nil, err
	}
	if err := s.classify(resp, "the EPR refused the search while "+what); err != nil {
		return nil, err
	}
	var b r4.Bundle
	if err := json.Unmarshal(resp.body, &b); err != nil {
		return nil, retryable("the EPR returned an unreadable search result while "+what, 0, err)
	}
	var out []json.RawMessage
	for _, e := range b.Entry {
		if e.Search != nil && e.Search.Mode != nil && *e.Search.Mode != r4.SearchEntryModeMatch {
			continue
		}
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if json.Unmarshal(e.Resource, &head) == nil && head.ResourceType == resourceType {
			out = append(out, e.Resource)
		}
	}
	return out, nil
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// maxResponse bounds what we read from the server; FHIR replies here are small.
const maxResponse = 8 << 20

func (s *ServerSink) do(ctx context.Context, method, target string, hdr http.Header, body []byte) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return response{}, permanent("the FHIR request could not be built (check the base URL)", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json; charset=utf-8")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 && re.Response.StatusCode != http.StatusTooManyRequests {
			return response{}, permanent("the EPR's token endpoint refused scribe's credentials (an administrator must check the SMART client settings)", err)
		}
		if ctx.Err() != nil {
			return response{}, retryable("delivery was interrupted", 0, ctx.Err())
		}
		return response{}, retryable("the patient record server could not be reached", 0, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return response{}, retryable("the patient record server's reply was cut off", 0, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// classify maps an HTTP status to nil, a retryable or a permanent error that carries
// the status (for the write-back audit trail).
func (s *ServerSink) classify(r response, what string) error {
	err := s.classifyStatus(r, what)
	var de *DeliveryError
	if errors.As(err, &de) {
		de.HTTPStatus = r.status
	}
	return err
}

func (s *ServerSink) classifyStatus(r response, what string) error {
	switch {
	case r.status >= 200 && r.status < 300:
		return nil
	case r.status == http.StatusTooManyRequests || r.status == http.StatusRequestTimeout || r.status >= 500:
		return retryable(fmt.Sprintf("the patient record server is busy or unavailable (HTTP %d)", r.status),
			parseRetryAfter(r.header.Get("Retry-After"), s.now()), nil)
	case r.status == http.StatusUnauthorized || r.status == http.StatusForbidden:
		return permanent(fmt.Sprintf("the patient record server refused scribe's credentials (HTTP %d); an administrator must check the FHIR authentication settings", r.status), nil)
	default:
		msg := fmt.Sprintf("%s (HTTP %d)", what, r.status)
		if detail := outcomeText(r.body); detail != "" {
			msg += ": " + detail
		}
		return permanent(msg, nil)
	}
}

// outcomeText summarises an OperationOutcome body for people.
func outcomeText(body []byte) string {
	var oo r4.OperationOutcome
	if json.Unmarshal(body, &oo) != nil {
		return ""
	}
	var parts []string
	for _, is := range oo.Issue {
		var t string
		switch {
		case is.Details != nil && is.Details.Text != nil:
			t = *is.Details.Text
		case is.Diagnostics != nil:
			t = *is.Diagnostics
		default:
			continue
		}
		if len(is.Expression) > 0 {
			t += " at " + strings.Join(is.Expression, ", ")
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, "; ")
}

func (s *ServerSink) endpoint(path string, q url.Values) string {
	u := *s.base
	u.Path = strings.TrimRight(u.Path, "/") + "/" + path
	u.RawQuery = ""
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// location returns the absolute URL of the resource in a create response.
func (s *ServerSink) location(r response, resourceType string) string {
	if loc := r.header.Get("Location"); loc != "" {
		// A relative Location is relative to the FHIR base, which needs its trailing slash
		// for URL resolution to keep the last path segment.
		dir := *s.base
		dir.Path = strings.TrimRight(dir.Path, "/") + "/"
		if u, err := dir.Parse(loc); err == nil {
			return u.String()
		}
		return loc
	}
	var head struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(r.body, &head) == nil && head.ID != "" {
		return s.endpoint(resourceType+"/"+head.ID, nil)
	}
	return ""
}
