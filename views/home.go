package views

// Home is the service's start page.
type Home struct {
	// Demo, in dev mode with the demo workspace, is where a newcomer
	// signs in; nil in production.
	Demo *HomeDemo
}

// HomeDemo is the demo workspace's sign-in and the accounts make run printed.
type HomeDemo struct {
	LoginURL string
	Accounts []HomeDemoAccount
}

// HomeDemoAccount is one demo sign-in.
type HomeDemoAccount struct {
	Role, Email, Password string
}
