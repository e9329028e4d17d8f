// Command hello is the program the ociimage tests put in their images.
package main

import (
	"fmt"
	"os"
)

func main() { fmt.Println("hello from", os.Args[0]) }
