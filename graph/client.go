package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultBaseURL is Microsoft Graph in the public cloud.
const DefaultBaseURL = "https://graph.microsoft.com"

// Options configure a Client; zero values take defaults.
type Options struct {
	// BaseURL is Graph's root for the cloud (https://graph.microsoft.us, ...); default public.
	BaseURL string
	// HTTPClient sends the requests; its timeout bounds each attempt (default 20s).
	HTTPClient *http.Client
	// MaxRetries bounds retries of 429 and 503 answers and network errors (default 3).
	MaxRetries int
	// RetryBudget bounds the total time spent waiting between retries (default 10s); a
	// Retry-After beyond what is left ends the retries with the error.
	RetryBudget time.Duration
	// OnResponse, when set, is called after each attempt (for metrics).
	OnResponse func(path string, status int)
}

// Client calls Microsoft Graph with a caller-supplied (delegated, OBO) token.
type Client struct {
	base string
	opts Options
}

// New makes a Client.
func New(o Options) (*Client, error) {
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(o.BaseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("GRAPH_BASE_URL %q must be an https origin such as https://graph.microsoft.com", o.BaseURL)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 20 * time.Second}
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 3
	}
	if o.RetryBudget == 0 {
		o.RetryBudget = 10 * time.Second
	}
	return &Client{base: strings.TrimSuffix(o.BaseURL, "/"), opts: o}, nil
}

// BaseURL is the Graph root the client talks to.
func (c *Client) BaseURL() string { return c.base }

// Error is Graph's error envelope with the HTTP status.
type Error struct {
	Status     int
	Code       string
	Message    string
	RequestID  string
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("graph: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// IsStatus reports whether err is a Graph error with the given HTTP status.
func IsStatus(err error, status int) bool {
	var ge *Error
	return errors.As(err, &ge) && ge.Status == status
}

// ErrUnavailable wraps network failures and exhausted retries: the call may succeed later.
var ErrUnavailable = errors.New("microsoft graph unavailable")

// Request describes one GET.
type Request struct {
	Path     string // e.g. /v1.0/me
	Query    url.Values
	Eventual bool // send ConsistencyLevel: eventual (advanced directory queries, $count)
	PageSize int  // Prefer: odata.maxpagesize
}

// Get performs req with token and decodes the JSON answer into out.
func (c *Client) Get(ctx context.Context, token string, req Request, out any) error {
	u := c.base + req.Path
	if len(req.Query) > 0 {
		u += "?" + req.Query.Encode()
	}
	return c.getURL(ctx, token, u, req, out)
}

func (c *Client) getURL(ctx context.Context, token, u string, req Request, out any) error {
	budget := c.opts.RetryBudget
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, token, u, req, out)
		var ge *Error
		retryable := errors.Is(err, ErrUnavailable) || (errors.As(err, &ge) && (ge.Status == 429 || ge.Status == 503 || ge.Status == 504))
		if err == nil || !retryable || attempt >= c.opts.MaxRetries {
			return err
		}
		wait := time.Duration(1<<attempt) * 200 * time.Millisecond
		if ge != nil && ge.RetryAfter > 0 {
			wait = ge.RetryAfter
		}
		if wait > budget {
			return err
		}
		budget -= wait
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func (c *Client) once(ctx context.Context, token, u string, req Request, out any) error {
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Accept", "application/json")
	if req.Eventual {
		hr.Header.Set("ConsistencyLevel", "eventual")
	}
	if req.PageSize > 0 {
		hr.Header.Set("Prefer", "odata.maxpagesize="+strconv.Itoa(req.PageSize))
	}
	resp, err := c.opts.HTTPClient.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %v", ErrUnavailable, redactURL(err))
	}
	defer resp.Body.Close()
	if c.opts.OnResponse != nil {
		c.opts.OnResponse(req.Path, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%w: reading the response: %v", ErrUnavailable, err)
	}
	if resp.StatusCode/100 != 2 {
		return parseError(resp, body)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("graph: decoding %s: %w", req.Path, err)
	}
	return nil
}

// redactURL keeps query strings out of error text (they can carry filter values).
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery = ""
			return fmt.Errorf("%s %s: %v", ue.Op, u.String(), ue.Err)
		}
	}
	return err
}

func parseError(resp *http.Response, body []byte) error {
	var env struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				RequestID string `json:"request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &env)
	e := &Error{Status: resp.StatusCode, Code: env.Error.Code, Message: env.Error.Message, RequestID: env.Error.InnerError.RequestID}
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("request-id")
	}
	if e.Code == "" {
		e.Code = http.StatusText(resp.StatusCode)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.ParseFloat(ra, 64); err == nil && secs >= 0 && secs < 3600 {
			e.RetryAfter = time.Duration(secs * float64(time.Second))
		} else if t, err := http.ParseTime(ra); err == nil {
			e.RetryAfter = time.Until(t)
		}
	}
	return e
}

// Page is one page of a collection.
type Page[T any] struct {
	Count    *int   `json:"@odata.count"`
	NextLink string `json:"@odata.nextLink"`
	Value    []T    `json:"value"`
}

// List follows @odata.nextLink until max items (0: no cap beyond 10,000) and returns them with
// Graph's @odata.count when requested. Next links must stay on the client's base URL.
func List[T any](ctx context.Context, c *Client, token string, req Request, max int) ([]T, *int, error) {
	if max <= 0 || max > 10_000 {
		max = 10_000
	}
	var out []T
	var count *int
	u := c.base + req.Path
	if len(req.Query) > 0 {
		u += "?" + req.Query.Encode()
	}
	for u != "" && len(out) < max {
		var p Page[T]
		if err := c.getURL(ctx, token, u, req, &p); err != nil {
			return out, count, err
		}
		if count == nil {
			count = p.Count
		}
		out = append(out, p.Value...)
		if p.NextLink != "" && !strings.HasPrefix(p.NextLink, c.base+"/") {
			return out, count, fmt.Errorf("graph: refusing a nextLink outside %s", c.base)
		}
		u = p.NextLink
	}
	if len(out) > max {
		out = out[:max]
	}
	return out, count, nil
}
