// Command hello is the service of examples/minimal.yml: a TCP server that
// greets every connection with the guest's hostname.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
)

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	flag.Parse()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	host, _ := os.Hostname()
	fmt.Printf("hello: listening on %s\n", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(c, "hello from %s\n", host)
		c.Close()
	}
}
