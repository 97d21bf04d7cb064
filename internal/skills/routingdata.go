package skills

import (
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"slices"

	"go.yaml.in/yaml/v3"
)

//go:embed routing.yaml
var routingYAML []byte

// routingData is routing.yaml compiled: what every skill's score shares.
type routingData struct {
	neg          negation
	signals      map[string]signalDef
	signalOrder  []string
	intents      map[string]intentDef
	tieBreak     map[string]int // id → rank (lower first)
	roleDefaults map[string]string
}

type signalDef struct {
	roles    []string // empty: every role
	original bool     // on the original text, not the lower-cased one
	when     []cond
}

type intentDef struct {
	bonus      int
	supersedes []string
	when       []cond
}

// parseRoutingData reads routing.yaml.
func parseRoutingData(data []byte) (*routingData, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("routing.yaml: %v", err)
	}
	m, ok := asMap(doc)
	if !ok {
		return nil, errors.New("routing.yaml: must be a mapping")
	}
	rd := &routingData{signals: map[string]signalDef{}, intents: map[string]intentDef{}, tieBreak: map[string]int{},
		roleDefaults: map[string]string{}}
	var err error
	if rd.neg.words, err = stringsField(m, "negations", "", 32); err != nil {
		return nil, err
	}
	if rd.neg.window, err = intField(m, "negation_window", "", 4); err != nil {
		return nil, err
	}

	signals, err := mapField(m, "signals", "")
	if err != nil {
		return nil, err
	}
	rd.signalOrder = slices.Sorted(maps.Keys(signals))
	for _, name := range rd.signalOrder {
		sm, ok := asMap(signals[name])
		if !ok {
			return nil, fmt.Errorf("signals.%s: must be a mapping", name)
		}
		var s signalDef
		if s.roles, err = stringsField(sm, "roles", "signals."+name, 8); err != nil {
			return nil, err
		}
		s.original, _ = sm["original_text"].(bool)
		if s.when, err = parseWhen(sm, "signals."+name, !s.original); err != nil {
			return nil, err
		}
		for _, c := range s.when {
			if len(c.signals) > 0 || len(c.notSignals) > 0 {
				return nil, fmt.Errorf("signals.%s: a signal cannot depend on signals", name)
			}
		}
		rd.signals[name] = s
	}

	intents, err := mapField(m, "intents", "")
	if err != nil {
		return nil, err
	}
	for name, v := range intents {
		im, ok := asMap(v)
		if !ok {
			return nil, fmt.Errorf("intents.%s: must be a mapping", name)
		}
		var in intentDef
		if in.bonus, err = intField(im, "bonus", "intents."+name, 0); err != nil {
			return nil, err
		}
		if in.supersedes, err = stringsField(im, "supersedes", "intents."+name, 8); err != nil {
			return nil, err
		}
		if in.when, err = parseWhen(im, "intents."+name, true); err != nil {
			return nil, err
		}
		for _, c := range in.when {
			for _, s := range append(slices.Clone(c.signals), c.notSignals...) {
				if _, ok := rd.signals[s]; !ok {
					return nil, fmt.Errorf("intents.%s: unknown signal %q", name, s)
				}
			}
		}
		rd.intents[name] = in
	}

	order, err := stringsField(m, "tie_break", "", 64)
	if err != nil {
		return nil, err
	}
	for i, id := range order {
		rd.tieBreak[id] = i
	}
	defaults, err := mapField(m, "role_defaults", "")
	if err != nil {
		return nil, err
	}
	for role, v := range defaults {
		id, ok := scalarString(v)
		if !ok {
			return nil, fmt.Errorf("role_defaults.%s: must be a skill id", role)
		}
		rd.roleDefaults[role] = id
	}
	return rd, nil
}

func parseWhen(m map[string]any, where string, lower bool) ([]cond, error) {
	v, ok := field(m, "when")
	list, isList := v.([]any)
	if !ok || !isList || len(list) == 0 {
		return nil, fmt.Errorf("%s.when: must be a non-empty list of conditions", where)
	}
	if len(list) > maxWhen {
		return nil, fmt.Errorf("%s.when: more than %d conditions", where, maxWhen)
	}
	var out []cond
	for i, item := range list {
		c, err := parseCond(item, lower, fmt.Sprintf("%s.when[%d]", where, i))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// evalSignals computes the signals for a message from role.
func (rd *routingData) evalSignals(role, original, lower string) map[string]bool {
	out := map[string]bool{}
	for _, name := range rd.signalOrder {
		s := rd.signals[name]
		if len(s.roles) > 0 && !slices.Contains(s.roles, role) {
			continue
		}
		text := lower
		if s.original {
			text = original
		}
		for _, c := range s.when {
			if ok, _ := c.eval(text, nil, nil); ok {
				out[name] = true
				break
			}
		}
	}
	return out
}

// roleDefault is the default skill id of role.
func (rd *routingData) roleDefault(role string) string {
	if id, ok := rd.roleDefaults[role]; ok {
		return id
	}
	return rd.roleDefaults["*"]
}
