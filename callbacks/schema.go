package callbacks

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/opgate/opgate/internal/jsondec"
)

// SchemaFS holds the published contract: schema/request.json and
// schema/response.json (JSON Schema draft 2020-12). Handler authors in other
// languages can take the same files from the repository.
//
//go:embed schema/request.json schema/response.json
var SchemaFS embed.FS

// The $id of each schema in SchemaFS.
const (
	RequestSchemaURL  = "https://opgate.dev/schemas/v1alpha1/request.json"
	ResponseSchemaURL = "https://opgate.dev/schemas/v1alpha1/response.json"
)

// Schemas are the compiled contract schemas. A compiled schema is read-only
// and safe for concurrent use.
type Schemas struct {
	Request  *jsonschema.Schema
	Response *jsonschema.Schema
}

// compiledSchemas compiles the embedded schemas once per process: they
// never change after the build, and compiling them per response would cost
// more than validating.
var compiledSchemas = sync.OnceValues(CompileSchemas)

// LoadSchemas returns the compiled contract schemas, compiled on first use
// and shared afterwards.
func LoadSchemas() (*Schemas, error) { return compiledSchemas() }

// CompileSchemas compiles the schemas in SchemaFS afresh. Most callers want
// LoadSchemas.
func CompileSchemas() (*Schemas, error) {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	// Draft 2020-12 treats "format" as an annotation only; the contract
	// means it (deadline is a date-time), so assert it.
	c.AssertFormat = true
	// Both schemas are self-contained; refuse any other reference rather
	// than let the library fetch it from the network or the disk.
	c.LoadURL = func(url string) (io.ReadCloser, error) {
		return nil, fmt.Errorf("schema %s is not part of the embedded contract", url)
	}
	files := []struct{ url, path string }{
		{RequestSchemaURL, "schema/request.json"},
		{ResponseSchemaURL, "schema/response.json"},
	}
	for _, f := range files {
		data, err := SchemaFS.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("read embedded %s: %w", f.path, err)
		}
		if err := c.AddResource(f.url, bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("load embedded %s: %w", f.path, err)
		}
	}
	req, err := c.Compile(RequestSchemaURL)
	if err != nil {
		return nil, fmt.Errorf("compile request schema: %w", err)
	}
	resp, err := c.Compile(ResponseSchemaURL)
	if err != nil {
		return nil, fmt.Errorf("compile response schema: %w", err)
	}
	return &Schemas{Request: req, Response: resp}, nil
}

// DecodeResponse checks a handler's answer against the response schema and
// decodes it. An empty or all-whitespace body is a valid empty Response. When
// the body is not valid JSON, breaks the contract or the limits
// MaxResponseDepth and MaxResponseElements, the error is a
// *ContractError listing every violation with its JSON path, and no Response
// is returned: a half-understood answer must never be applied.
func DecodeResponse(body []byte) (*Response, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return &Response{}, nil
	}
	if v := checkShape(body); v != nil {
		return nil, &ContractError{Document: "response", Violations: []Violation{*v}}
	}
	// One parse serves the checks and the Response: the document the
	// checks admitted is converted, never decoded a second time. The checks
	// are schema/response.json's rules in Go (responsecheck.go), which
	// cost a fraction of running the schema validator on every answer.
	doc, err := parseJSON(body)
	if err != nil {
		return nil, &ContractError{Document: "response", Violations: []Violation{{Message: err.Error()}}}
	}
	if bad := checkResponse(doc); len(bad) > 0 {
		return nil, &ContractError{Document: "response", Violations: bad}
	}
	resp, bad := responseOf(doc)
	if len(bad) > 0 {
		return nil, &ContractError{Document: "response", Violations: bad}
	}
	// The pattern admits "99999999999h", which overflows time.Duration.
	if bad := durationViolations(resp); len(bad) > 0 {
		return nil, &ContractError{Document: "response", Violations: bad}
	}
	return resp, nil
}

// ValidateRequest checks an encoded CallbackRequest against the request
// schema. The gateway's tests use it to prove what it sends; handler authors
// can use it to refuse a request they would misread. The error is a
// *ContractError when the body is not valid JSON or breaks the contract.
func ValidateRequest(body []byte) error {
	// The schema's rules in Go (requestcheck.go), which tests prove give
	// the schema validator's verdict, without compiling the schemas.
	_, err := parseRequest(body)
	return err
}

// parseJSON decodes one JSON value the way the schema library expects
// (numbers as json.Number, so large integers keep their precision) and
// refuses anything after it, which json.Decoder alone would ignore.
func parseJSON(body []byte) (any, error) {
	if doc, ok := jsondec.Decode(body, jsondec.UseNumber); ok {
		return doc, nil
	}
	// Declined: broken, or past the fast decoder's reach; encoding/json
	// decodes it or says what is wrong where.
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", describeSyntaxError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("not valid JSON: unexpected data after the top-level value at byte %d", dec.InputOffset())
	}
	return doc, nil
}

// describeSyntaxError adds the byte offset, which encoding/json keeps out of
// its message, so a handler author can find the mistake.
func describeSyntaxError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%w (at byte %d)", err, se.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the body ends in the middle of a value: %w", err)
	}
	return err
}
