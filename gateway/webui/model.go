package webui

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/inspect"
)

// Page is what every page shows around its content.
type Page struct {
	Title     string
	RefreshMS int64
	Now       time.Time
}

type errorPage struct {
	Page
	Error string
}

type indexPage struct {
	Page
	Operators []operatorLine
	States    []inspect.State
}

// operatorLine is an operator's summary. Known is false while its caches
// have not synced: its objects are not known, so no count is shown, as
// gateway status prints "?" and opgate_objects leaves it out.
type operatorLine struct {
	inspect.Operator
	Known bool
}

// unknownObjects says why an operator's counts are not shown.
const unknownObjects = "unknown: caches not synced"

type operatorPage struct {
	Page
	Operator inspect.Operator
	Known    bool // see operatorLine
	// Objects are all the operator's objects, most serious state first.
	Objects []inspect.Object
	States  []inspect.State
}

type objectPage struct {
	Page
	Detail inspect.Detail
}

func (u *ui) newPage(title string) Page {
	return Page{Title: title, RefreshMS: u.cfg.Refresh.Milliseconds(), Now: u.cfg.Clock()}
}

func readiness(v engine.OperatorView) inspect.Readiness {
	return inspect.Readiness{Ready: v.Ready, Reason: v.Reason, Message: v.Message}
}

func (u *ui) indexPage() indexPage {
	p := indexPage{Page: u.newPage("Operators"), States: inspect.States}
	now := p.Now
	views := u.cfg.View()
	running := make(map[string]bool, len(views))
	for _, v := range views {
		running[v.Operator.Name] = true
		p.Operators = append(p.Operators, operatorLine{Operator: u.classifier.Summarize(v.Operator, readiness(v), v.Objects, now), Known: v.Synced})
	}
	u.classifier.Forget(func(name string) bool { return running[name] })
	return p
}

func (u *ui) find(name string) (engine.OperatorView, bool) {
	for _, v := range u.cfg.View() {
		if v.Operator.Name == name {
			return v, true
		}
	}
	return engine.OperatorView{}, false
}

func (u *ui) operatorPage(name string) (operatorPage, bool) {
	v, ok := u.find(name)
	if !ok {
		return operatorPage{}, false
	}
	p := operatorPage{Page: u.newPage("Operator " + name), States: inspect.States, Known: v.Synced}
	// One classification per object: the summary's lines are the list's.
	p.Operator, p.Objects = u.classifier.SummarizeObjects(v.Operator, readiness(v), v.Objects, p.Now)
	for _, obj := range v.Objects {
		if !inspect.Selects(v.Operator, obj) {
			p.Objects = append(p.Objects, inspect.ClassifyObject(v.Operator, obj, p.Now))
		}
	}
	sort.Slice(p.Objects, func(i, j int) bool { return inspect.Less(p.Objects[i], p.Objects[j]) })
	return p, true
}

// objectPage is the detail of one object; otherwise the HTTP status and
// why: 404 when the object is not watched, 503 while the operator's caches
// have not synced, as the object may exist (404 would tell a monitor it
// is gone).
func (u *ui) objectPage(op, namespace, name string) (objectPage, int, string) {
	v, ok := u.find(op)
	if !ok {
		return objectPage{}, http.StatusNotFound, fmt.Sprintf("this gateway runs no operator %q", op)
	}
	if !v.Synced {
		return objectPage{}, http.StatusServiceUnavailable,
			fmt.Sprintf("operator %q has not synced its caches: object %s is %s", op, key(namespace, name), unknownObjects)
	}
	for _, obj := range v.Objects {
		if obj.GetNamespace() == namespace && obj.GetName() == name {
			p := objectPage{Page: u.newPage(op + ": " + key(namespace, name))}
			p.Detail = inspect.Describe(v.Operator, obj, nil, p.Now)
			return p, http.StatusOK, ""
		}
	}
	return objectPage{}, http.StatusNotFound, fmt.Sprintf("operator %q watches no object %s", op, key(namespace, name))
}

func key(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}
