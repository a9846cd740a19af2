package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
)

// runImportFile is `loadgen import -hash PARAMS -n N -email user%d@load.test
// -password pw-%d`: a member import file (JSON Lines, for `gatehouse user
// import`) of n members whose passwords are hashed here, as the server with
// those parameters would store them.
func runImportFile(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadgen import", flag.ContinueOnError)
	hash := fs.String("hash", "", "argon2id parameters (empty: the default, argon2id:m=19456,t=2,p=1)")
	n := fs.Int("n", 1, "members")
	email := fs.String("email", "user%d@load.test", "email, %d is the member's number from 0")
	password := fs.String("password", "password-%d", "password, %d is the member's number from 0")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, err := parseArgonParams(*hash)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for i := range *n {
		if err := enc.Encode(map[string]string{"email": fmt.Sprintf(*email, i), "role": "member",
			"password_hash": phcHash(p, fmt.Sprintf(*password, i))}); err != nil {
			return err
		}
	}
	return nil
}
