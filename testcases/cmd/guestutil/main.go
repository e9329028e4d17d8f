// Command guestutil is a multi-call helper for kitrun's test cases, run in
// the guest over SSH: small jobs with known output, status and input.
//
//	guestutil upper            copy stdin to stdout in upper case
//	guestutil exit N [MSG]     print MSG on stderr, exit with status N
//	guestutil env NAME         print the environment variable NAME
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "upper":
		in := bufio.NewReader(os.Stdin)
		b, err := io.ReadAll(in)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.WriteString(strings.ToUpper(string(b)))
	case "exit":
		if len(args) < 1 {
			usage()
		}
		n, err := strconv.Atoi(args[0])
		if err != nil {
			usage()
		}
		if len(args) > 1 {
			fmt.Fprintln(os.Stderr, strings.Join(args[1:], " "))
		}
		os.Exit(n)
	case "env":
		if len(args) != 1 {
			usage()
		}
		fmt.Println(os.Getenv(args[0]))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: guestutil upper | exit N [MSG] | env NAME")
	os.Exit(2)
}
