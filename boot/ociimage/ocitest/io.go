package ocitest

import (
	"io"
	"log"
)

type ioReadCloser = io.ReadCloser

type nopCloser struct{ io.Reader }

func (nopCloser) Close() error { return nil }

func discard() *log.Logger { return log.New(io.Discard, "", 0) }
