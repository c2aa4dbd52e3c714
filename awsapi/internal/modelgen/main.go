// Command modelgen extracts operations from botocore's AWS IoT service
// model (service-2.json) into a smaller model file in the same format: the
// metadata, the operations named, and every shape they reference,
// transitively. awsapi's tests read the result to check routes, members,
// limits and error statuses.
//
// botocore's model carries the same shapes, limits and error codes as
// AWS's Smithy model (codegen/sdk-codegen/aws-models/iot.json in
// aws/aws-sdk-go-v2). Get it from botocore
// (botocore/data/iot/2015-05-28/service-2.json) and regenerate the things
// and policies model with:
//
//	go run ./awsapi/internal/modelgen -in service-2.json -out awsapi/testdata/iot-authz-api.json \
//		$(cat awsapi/testdata/iot-authz-api.ops)
//
// (iot-authz-api.ops lists the 43 operations of issue 15.) Given the 22
// operations of iot-certificate-api.json it reproduces that file byte for
// byte. Object keys keep the source's order, except the operations and
// shapes, which are sorted by name; HTML in documentation is written as is.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
)

func main() {
	in := flag.String("in", "/tmp/iot-service-2.json", "botocore service-2.json of AWS IoT")
	out := flag.String("out", "", "model file to write (default: standard output)")
	flag.Parse()
	if err := run(*in, *out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "modelgen:", err)
		os.Exit(1)
	}
}

type serviceModel struct {
	Metadata   json.RawMessage            `json:"metadata"`
	Operations map[string]json.RawMessage `json:"operations"`
	Shapes     map[string]json.RawMessage `json:"shapes"`
}

func run(in, out string, ops []string) error {
	if len(ops) == 0 {
		return fmt.Errorf("name the operations to extract")
	}
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var src serviceModel
	if err := json.Unmarshal(b, &src); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	dst := serviceModel{Metadata: src.Metadata, Operations: map[string]json.RawMessage{}, Shapes: map[string]json.RawMessage{}}
	var queue []string
	for _, name := range ops {
		op, ok := src.Operations[name]
		if !ok {
			return fmt.Errorf("%s has no operation %s", in, name)
		}
		dst.Operations[name] = op
		queue = append(queue, shapeRefs(op)...)
	}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if _, done := dst.Shapes[name]; done {
			continue
		}
		shape, ok := src.Shapes[name]
		if !ok {
			return fmt.Errorf("%s has no shape %s", in, name)
		}
		dst.Shapes[name] = shape
		queue = append(queue, shapeRefs(shape)...)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	// A map's keys are sorted by encoding/json; the raw values keep their
	// order. The top level is written in the source's order.
	buf.WriteString("{\n \"metadata\": ")
	if err := encodeIndented(&buf, dst.Metadata); err != nil {
		return err
	}
	for _, part := range []struct {
		key string
		m   map[string]json.RawMessage
	}{{"operations", dst.Operations}, {"shapes", dst.Shapes}} {
		fmt.Fprintf(&buf, ",\n %q: {", part.key)
		names := make([]string, 0, len(part.m))
		for k := range part.m {
			names = append(names, k)
		}
		slices.Sort(names)
		for i, k := range names {
			if i > 0 {
				buf.WriteString(",")
			}
			fmt.Fprintf(&buf, "\n  %q: ", k)
			if err := encodeIndented(&buf, part.m[k], "  "); err != nil {
				return err
			}
		}
		buf.WriteString("\n }")
	}
	buf.WriteString("\n}\n")
	if out == "" {
		_, err = os.Stdout.Write(buf.Bytes())
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// encodeIndented appends v indented by one space per level, its nested
// lines starting with prefix (one space when none is given).
func encodeIndented(buf *bytes.Buffer, v json.RawMessage, prefix ...string) error {
	p := " "
	if len(prefix) > 0 {
		p = prefix[0]
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, v); err != nil {
		return err
	}
	var ind bytes.Buffer
	if err := json.Indent(&ind, compact.Bytes(), p, " "); err != nil {
		return err
	}
	buf.Write(ind.Bytes())
	return nil
}

// shapeRefs returns the names of the shapes v references ("shape" members
// of its nested objects: input, output, errors, members, list members, map
// keys and values).
func shapeRefs(v json.RawMessage) []string {
	var node any
	if err := json.Unmarshal(v, &node); err != nil {
		return nil
	}
	var refs []string
	var walk func(any)
	walk = func(n any) {
		switch n := n.(type) {
		case map[string]any:
			if s, ok := n["shape"].(string); ok {
				refs = append(refs, s)
			}
			keys := make([]string, 0, len(n))
			for k := range n {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				if k != "documentation" {
					walk(n[k])
				}
			}
		case []any:
			for _, e := range n {
				walk(e)
			}
		}
	}
	walk(node)
	return refs
}
