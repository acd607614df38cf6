package callbacks

import "strconv"

// checkAnswer holds a Response built in Go to the rules the gateway reads
// its encoding by (schema/response.json, then the durations' range, as
// DecodeResponse does), field by field on the struct: the Mux checks every
// answer before it sends it, so that a mistake the gateway would refuse as
// a whole (an InvalidResponse, retried for ever) is a 500 naming it, and a
// log record. A valid answer costs no path strings: a part's violations
// are found with paths relative to it and placed under it afterwards. Of
// what encoding can write, only children and the fields below can break
// the schema; Status is any object.
func checkAnswer(resp *Response) []Violation {
	var r responseChecker
	if resp.Children != nil {
		if *resp.Children == nil {
			r.wrongType(nil, "/children", "array") // encoded null
		}
		for i, c := range *resp.Children {
			from := len(r.bad)
			var obj any // a nil child encodes as null
			if c != nil {
				obj = c.Object
			}
			r.child(obj, "")
			r.under("/children/"+strconv.Itoa(i), from)
		}
	}
	if resp.RequeueAfter != "" {
		r.duration(resp.RequeueAfter, "/requeueAfter")
	}
	for i, e := range resp.Events {
		from := len(r.bad)
		if e.Type != "" { // omitted when empty: the gateway reads Normal
			r.eventType(e.Type, "/type")
		}
		r.reason(e.Reason, "/reason")
		r.under("/events/"+strconv.Itoa(i), from)
	}
	if e := resp.Error; e != nil {
		r.nonEmpty(e.Message, "/error/message")
		if e.RetryAfter != "" {
			r.duration(e.RetryAfter, "/error/retryAfter")
		}
	}
	if len(r.bad) == 0 {
		return durationViolations(resp)
	}
	return sortedViolations(r.bad)
}

// under puts the violations found since from under prefix; the string is
// built only when there are some.
func (r *responseChecker) under(prefix string, from int) {
	for i := from; i < len(r.bad); i++ {
		r.bad[i].Path = prefix + r.bad[i].Path
	}
}

// durationViolations reports the durations the schema's pattern admits but
// time.Duration cannot hold ("99999999999h").
func durationViolations(resp *Response) []Violation {
	var bad []Violation
	if _, err := resp.RequeueAfterDuration(); err != nil {
		bad = append(bad, Violation{Path: "/requeueAfter", Message: err.Error()})
	}
	if resp.Error != nil {
		if _, err := resp.Error.RetryAfterDuration(); err != nil {
			bad = append(bad, Violation{Path: "/error/retryAfter", Message: err.Error()})
		}
	}
	return bad
}
