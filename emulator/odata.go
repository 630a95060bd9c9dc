package emulator

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A small OData $filter and $orderby implementation covering what entramcp and its users send to
// Graph: eq ne gt ge lt le, and or not, parentheses, contains/startswith/endswith, tolower and
// toupper, any() lambdas over string collections, string, boolean, number, null and DateTime
// literals. Anything else is a 400 with Graph's error shape, never a silent mismatch.

type predicate func(map[string]any) bool

type filterParser struct {
	toks   []string
	pos    int
	fields []string // the entity's filterable properties
	lambda string   // the lambda variable in scope, if any
}

var memberFilterFields = []string{"id", "displayName", "description", "securityEnabled", "mailEnabled"}

func filterObjects(items []map[string]any, filter string, fields []string) ([]map[string]any, *graphError) {
	if strings.TrimSpace(filter) == "" {
		return items, nil
	}
	pred, err := parseFilter(filter, fields)
	if err != nil {
		return nil, gerr(http.StatusBadRequest, "BadRequest", "Invalid filter clause: "+err.Error())
	}
	out := []map[string]any{}
	for _, it := range items {
		if pred(it) {
			out = append(out, it)
		}
	}
	return out, nil
}

func parseFilter(s string, fields []string) (predicate, error) {
	if len(s) > 2048 {
		return nil, fmt.Errorf("the filter is too long")
	}
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	p := &filterParser{toks: toks, fields: fields}
	pred, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("syntax error at '%s'", p.toks[p.pos])
	}
	return pred, nil
}

func tokenize(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case strings.IndexByte("(),:", c) >= 0:
			toks = append(toks, string(c))
			i++
		case c == '\'':
			j := i + 1
			var b strings.Builder
			for {
				if j >= len(s) {
					return nil, fmt.Errorf("unterminated string literal")
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						b.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			toks = append(toks, "'"+b.String())
			i = j + 1
		default:
			j := i
			for j < len(s) && strings.IndexByte(" \t(),'", s[j]) < 0 && !(s[j] == ':' && !looksLikeDate(s[i:j])) {
				j++
			}
			if j == i {
				return nil, fmt.Errorf("unexpected character %q", c)
			}
			toks = append(toks, s[i:j])
			i = j
		}
		if len(toks) > 256 {
			return nil, fmt.Errorf("the filter has too many terms")
		}
	}
	return toks, nil
}

// looksLikeDate lets a DateTime literal keep its colons: 2026-01-01T00:00:00Z.
func looksLikeDate(prefix string) bool {
	return len(prefix) >= 11 && prefix[4] == '-' && prefix[10] == 'T'
}

func (p *filterParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *filterParser) next() string {
	t := p.peek()
	p.pos++
	return t
}

func (p *filterParser) expect(t string) error {
	if got := p.next(); got != t {
		return fmt.Errorf("expected '%s' but found '%s'", t, got)
	}
	return nil
}

func (p *filterParser) or() (predicate, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	for strings.EqualFold(p.peek(), "or") {
		p.next()
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(m map[string]any) bool { return l(m) || right(m) }
	}
	return left, nil
}

func (p *filterParser) and() (predicate, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for strings.EqualFold(p.peek(), "and") {
		p.next()
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(m map[string]any) bool { return l(m) && right(m) }
	}
	return left, nil
}

func (p *filterParser) unary() (predicate, error) {
	if strings.EqualFold(p.peek(), "not") {
		p.next()
		inner, err := p.unary()
		if err != nil {
			return nil, err
		}
		return func(m map[string]any) bool { return !inner(m) }, nil
	}
	if p.peek() == "(" {
		p.next()
		inner, err := p.or()
		if err != nil {
			return nil, err
		}
		return inner, p.expect(")")
	}
	return p.primary()
}

// operand is a value getter: a property, the lambda variable, or tolower/toupper of one.
type operand func(map[string]any) any

func (p *filterParser) operand() (operand, error) {
	t := p.next()
	switch strings.ToLower(t) {
	case "tolower", "toupper":
		if err := p.expect("("); err != nil {
			return nil, err
		}
		inner, err := p.operand()
		if err != nil {
			return nil, err
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		fn := strings.ToLower
		if strings.EqualFold(t, "toupper") {
			fn = strings.ToUpper
		}
		return func(m map[string]any) any {
			if s, ok := inner(m).(string); ok {
				return fn(s)
			}
			return nil
		}, nil
	}
	if p.lambda != "" && t == p.lambda {
		return func(m map[string]any) any { return m["$it"] }, nil
	}
	if !slices.Contains(p.fields, t) {
		return nil, fmt.Errorf("property '%s' is not supported in $filter here", truncate(t, 60))
	}
	return func(m map[string]any) any { return m[t] }, nil
}

func (p *filterParser) literal() (any, error) {
	t := p.next()
	switch {
	case t == "":
		return nil, fmt.Errorf("a value is missing")
	case strings.HasPrefix(t, "'"):
		return t[1:], nil
	case t == "true" || t == "false":
		return t == "true", nil
	case t == "null":
		return nil, nil
	}
	if ts, err := time.Parse(time.RFC3339, t); err == nil {
		return ts, nil
	}
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		return f, nil
	}
	return nil, fmt.Errorf("'%s' is not a valid literal", truncate(t, 60))
}

func (p *filterParser) primary() (predicate, error) {
	t := strings.ToLower(p.peek())
	switch t {
	case "contains", "startswith", "endswith":
		p.next()
		if err := p.expect("("); err != nil {
			return nil, err
		}
		op, err := p.operand()
		if err != nil {
			return nil, err
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
		lit, err := p.literal()
		if err != nil {
			return nil, err
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		needle, ok := lit.(string)
		if !ok {
			return nil, fmt.Errorf("%s needs a string", t)
		}
		fn := map[string]func(string, string) bool{"contains": strings.Contains, "startswith": strings.HasPrefix, "endswith": strings.HasSuffix}[t]
		return func(m map[string]any) bool {
			s, ok := op(m).(string)
			return ok && fn(s, needle)
		}, nil
	}
	// A lambda over a collection: tags/any(t:t eq 'x').
	if i := strings.Index(p.peek(), "/"); i > 0 && p.lambda == "" {
		tok := p.next()
		field, fn := tok[:i], strings.ToLower(tok[i+1:])
		if !slices.Contains(p.fields, field) || (fn != "any" && fn != "all") {
			return nil, fmt.Errorf("'%s' is not supported in $filter here", truncate(tok, 60))
		}
		if err := p.expect("("); err != nil {
			return nil, err
		}
		p.lambda = p.next()
		if err := p.expect(":"); err != nil {
			return nil, err
		}
		body, err := p.or()
		p.lambda = ""
		if err != nil {
			return nil, err
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		return func(m map[string]any) bool {
			list, _ := m[field].([]any)
			if fn == "all" {
				for _, x := range list {
					if !body(map[string]any{"$it": x}) {
						return false
					}
				}
				return true
			}
			for _, x := range list {
				if body(map[string]any{"$it": x}) {
					return true
				}
			}
			return false
		}, nil
	}
	op, err := p.operand()
	if err != nil {
		return nil, err
	}
	cmp := strings.ToLower(p.next())
	if !slices.Contains([]string{"eq", "ne", "gt", "ge", "lt", "le"}, cmp) {
		return nil, fmt.Errorf("expected a comparison operator but found '%s'", truncate(cmp, 20))
	}
	lit, err := p.literal()
	if err != nil {
		return nil, err
	}
	return func(m map[string]any) bool { return compare(op(m), cmp, lit) }, nil
}

func compare(v any, op string, lit any) bool {
	c, ok := order(v, lit)
	if !ok {
		switch op {
		case "eq":
			return v == nil && lit == nil
		case "ne":
			return !(v == nil && lit == nil)
		}
		return false
	}
	switch op {
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	}
	return c <= 0
}

// order compares a property value with a literal of a compatible type.
func order(v, lit any) (int, bool) {
	switch l := lit.(type) {
	case string:
		s, ok := v.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(strings.ToLower(s), strings.ToLower(l)), true
	case bool:
		b, ok := v.(bool)
		if !ok {
			return 0, false
		}
		if b == l {
			return 0, true
		}
		if b {
			return 1, true
		}
		return -1, true
	case float64:
		f, ok := v.(float64)
		if !ok {
			return 0, false
		}
		return cmpFloat(f, l), true
	case time.Time:
		s, ok := v.(string)
		if !ok {
			return 0, false
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return 0, false
		}
		return t.Compare(l), true
	}
	return 0, false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// sortObjects applies $orderby: "field [asc|desc], ...".
func sortObjects(items []map[string]any, orderby string, fields []string) *graphError {
	if strings.TrimSpace(orderby) == "" {
		return nil
	}
	type key struct {
		field string
		desc  bool
	}
	var keys []key
	for _, part := range strings.Split(orderby, ",") {
		f := strings.Fields(part)
		if len(f) == 0 || len(f) > 2 || !slices.Contains(fields, f[0]) || (len(f) == 2 && f[1] != "asc" && f[1] != "desc") {
			return gerr(http.StatusBadRequest, "BadRequest", "Invalid $orderby clause '"+truncate(part, 60)+"'.")
		}
		keys = append(keys, key{f[0], len(f) == 2 && f[1] == "desc"})
	}
	sort.SliceStable(items, func(i, j int) bool {
		for _, k := range keys {
			c, ok := orderValues(items[i][k.field], items[j][k.field])
			if !ok || c == 0 {
				continue
			}
			if k.desc {
				return c > 0
			}
			return c < 0
		}
		return false
	})
	return nil
}

func orderValues(a, b any) (int, bool) {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		if !ok {
			return 1, true // nulls sort first
		}
		tx, e1 := time.Parse(time.RFC3339, x)
		ty, e2 := time.Parse(time.RFC3339, y)
		if e1 == nil && e2 == nil {
			return tx.Compare(ty), true
		}
		return strings.Compare(strings.ToLower(x), strings.ToLower(y)), true
	case bool, float64:
		return order(a, b)
	case nil:
		if b == nil {
			return 0, true
		}
		return -1, true
	}
	return 0, false
}
