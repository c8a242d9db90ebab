package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// HelloPath is the gateway endpoint that tells an agent whether its token is accepted.
const HelloPath = "/api/agent/hello"

// ErrUnreachable means no TLS connection to the gateway could be made (network, DNS,
// gateway down); a certificate that does not match the pin is ErrPinMismatch instead.
var ErrUnreachable = errors.New("cannot reach the gateway")

// Hello is what the gateway says about an agent whose token it accepts.
type Hello struct {
	AgentID   int64  `json:"agent_id"`
	AgentName string `json:"agent_name"`
	RoomID    int64  `json:"room_id"`
	RoomName  string `json:"room_name"`
}

// Check asks the gateway, over the pinned TLS connection, whether this agent's token is
// accepted, without touching any recording. Errors: ErrUnreachable, ErrPinMismatch
// (re-enrol, or something intercepts the connection), ErrRefused (token revoked or
// unknown, with the gateway's explanation); any other error means the gateway was reached
// with the pinned certificate but answered something unexpected.
func Check(ctx context.Context, cfg Config) (Hello, error) {
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return Hello{}, fmt.Errorf("gateway URL %q in the agent config: want https://host:port", cfg.URL)
	}
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: pinnedTLS(cfg.Fingerprint, nil)}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String()+HelloPath, nil)
	if err != nil {
		return Hello{}, err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	resp, err := client.Do(req)
	if err != nil {
		// The url.Error repeats the whole URL; the host is enough.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, ErrPinMismatch) {
			return Hello{}, err
		}
		return Hello{}, fmt.Errorf("%w at %s: %w", ErrUnreachable, u.Host, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return Hello{}, fmt.Errorf("%w (%s): %s", ErrRefused, resp.Status, errorText(body))
	case resp.StatusCode == http.StatusNotFound:
		return Hello{}, fmt.Errorf("the gateway has no %s (%s): it is older than this agent; update scribe on the gateway", HelloPath, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return Hello{}, fmt.Errorf("the gateway answered %s: %s", resp.Status, errorText(body))
	}
	var h Hello
	if err := json.Unmarshal(body, &h); err != nil || h.AgentID == 0 {
		return Hello{}, fmt.Errorf("the gateway's answer to %s is not an agent hello (%v)", HelloPath, err)
	}
	return h, nil
}
