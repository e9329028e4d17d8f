package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// This file owns reading results files back: kitrun JSON, or the Go
// benchmark format (see benchfmt.go), told apart by their content.

// ReadResults reads a results file written by `kitrun bench`: JSON (it
// starts with "{") or the Go benchmark format (anything else). Errors name
// the file, and the line where there is one.
func ReadResults(path string) (*Results, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseResults(data, path)
}

func parseResults(data []byte, file string) (*Results, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // a byte order mark, from some editors
	text := bytes.TrimLeft(data, " \t\r\n")
	if len(text) == 0 {
		return nil, fmt.Errorf("%s: empty file", file)
	}
	var r *Results
	var err error
	if text[0] == '{' {
		r, err = readJSON(data, file)
	} else {
		r, err = readBenchfmt(data, file)
	}
	if err != nil {
		return nil, err
	}
	if err := checkConfigIDs(r); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return r, nil
}

func readJSON(data []byte, file string) (*Results, error) {
	// Read the schema alone first: a file of another schema may not
	// decode into Results, and "newer schema" says more than why not.
	var head struct {
		Schema *int `json:"schema"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, jsonError(data, file, err)
	}
	if head.Schema == nil {
		return nil, fmt.Errorf("%s: not kitrun results: JSON with no \"schema\"", file)
	}
	if err := checkSchema(*head.Schema); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, jsonError(data, file, err)
	}
	for i := range r.Configs {
		if r.Configs[i].Stats == nil {
			r.Configs[i].Summarize(nil)
		}
	}
	return &r, nil
}

// checkSchema accepts the schema versions this kitrun reads.
func checkSchema(v int) error {
	switch {
	case v == SchemaVersion:
		return nil
	case v > SchemaVersion:
		return fmt.Errorf("results schema %d is newer than this kitrun reads (%d): use a newer kitrun", v, SchemaVersion)
	}
	return fmt.Errorf("unknown results schema %d (this kitrun reads %d)", v, SchemaVersion)
}

// jsonError adds the file and the line and column to a JSON decoding error.
func jsonError(data []byte, file string, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		if syntax.Offset >= int64(len(bytes.TrimRight(data, " \t\r\n"))) {
			line, _ := position(data, int64(len(data)))
			return fmt.Errorf("%s:%d: truncated JSON: %v", file, line, err)
		}
		line, col := position(data, syntax.Offset)
		return fmt.Errorf("%s:%d:%d: %v", file, line, col, err)
	case errors.As(err, &typ):
		line, col := position(data, typ.Offset)
		return fmt.Errorf("%s:%d:%d: %v", file, line, col, err)
	}
	return fmt.Errorf("%s: %v", file, err)
}

// position returns the 1-based line and column of byte offset in data.
func position(data []byte, offset int64) (line, col int) {
	offset = min(offset, int64(len(data)))
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, col
}

// checkConfigIDs rejects results that compare could not match: configs
// without an ID or with the same ID.
func checkConfigIDs(r *Results) error {
	seen := make(map[string]bool)
	for _, c := range r.Configs {
		if c.ID == "" {
			return fmt.Errorf("a configuration has no id")
		}
		if seen[c.ID] {
			return fmt.Errorf("configuration %s appears twice", c.ID)
		}
		seen[c.ID] = true
	}
	return nil
}
