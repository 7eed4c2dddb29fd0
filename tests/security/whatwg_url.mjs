// Parses URLs with node's WHATWG URL (what browsers do), for the differential tests of redirect URIs.
// stdin: one JSON array of strings per line; stdout: one JSON array per line, in the same order, of
// {protocol, username, password, hostname, port, pathname, search, hash, href} or {error}.
import { createInterface } from "node:readline";

const fields = ["protocol", "username", "password", "hostname", "port", "pathname", "search", "hash", "href"];

function parse(input) {
  try {
    const url = new URL(input);
    return Object.fromEntries(fields.map((name) => [name, url[name]]));
  } catch (error) {
    return { error: String(error.code || error.name) };
  }
}

for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  process.stdout.write(JSON.stringify(JSON.parse(line).map(parse)) + "\n");
}
