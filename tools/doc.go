// Package tools holds the MCP tools entramcp ships. Each tool reads the caller from the request
// (mcpauth.IdentityFrom) and never returns or logs the caller's token.
package tools
