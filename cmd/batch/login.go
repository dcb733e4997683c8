package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/batch-mailer/batch/internal/campaign"
)

// login is batch login: sign in to the [smtp] account with OAuth2's device
// flow and keep the token for send.
func (c *cli) login(ctx context.Context, args []string) error {
	fs := c.flags("login")
	provider := fs.String("provider", "", "")
	path, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if *provider != "" && !slices.Contains(campaign.Providers(), *provider) {
		return usageError{fmt.Sprintf("login: --provider %q: want google, microsoft or custom", *provider)}
	}
	camp, err := campaign.Load(path)
	if err != nil {
		return err
	}
	if camp.SMTP == nil {
		return fmt.Errorf("%s has no [smtp] table: add one with username and auth = \"xoauth2\" to sign in", path)
	}
	if camp.SMTP.TokenCmd != "" {
		return fmt.Errorf("%s: [smtp] token_cmd gives the token: remove it to use batch login's", path)
	}
	file, err := camp.SMTP.Login(ctx, campaign.LoginRequest{Provider: *provider, Secrets: campaign.Secrets{Getenv: c.getenv}, Prompt: c.stderr})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "signed in as %s with %s: the token is kept in %s\n", camp.SMTP.Username, camp.SMTP.OAuth.Provider, file)
	return nil
}
