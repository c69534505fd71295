// etcd as a main package of this module: etcd's own server module has replace directives, so
// `go install go.etcd.io/etcd/server/v3@...` is refused; this builds the version kubernetes pins.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
