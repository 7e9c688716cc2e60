/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the `HttpApi` declaration, and a
 * self-contained HTML page that renders it for people (served at /docs, no external scripts).
 */
import { OpenApi } from "effect/http-api"
import { endpointScopes, type EndpointName, L02Api } from "./HttpApi.ts"

type Json = Record<string, any>

const errorEvent = {
  description: "A failure after the stream started: `event: error` with an ErrorBody as data; the stream then ends.",
  errorEvent: "error",
  errorSchema: { $ref: "#/components/schemas/ErrorBody" }
}

const errorAnswers = (statuses: ReadonlyArray<string>): Json =>
  Object.fromEntries(
    statuses.map((status) => [status, { description: status === "404" ? "No such machine (E2001)." : "See ErrorBody (docs/errors.md).", content: { "application/json": { schema: { $ref: "#/components/schemas/ErrorBody" } } } }])
  )

/** Routes `l02 serve` answers beside the HttpApi declaration (src/http/dashboard, the document itself). */
const servedBeside: Json = {
  "/dashboard": {
    get: {
      operationId: "pages.dashboard",
      summary: "The live dashboard page (self-contained HTML; it asks for an API key with read scope for its data)",
      tags: ["pages"],
      responses: { "200": { description: "The page.", content: { "text/html": { schema: { type: "string" } } } } },
      security: [],
      "x-l02-scope": "public"
    }
  },
  "/v1/machines/{name}": {
    get: {
      operationId: "pages.machine",
      summary: "A machine definition as JSON for Stately Studio (agent, fleet or workflow)",
      tags: ["pages"],
      parameters: [{ name: "name", in: "path", required: true, schema: { type: "string", enum: ["agent", "fleet", "workflow"] } }],
      responses: {
        "200": { description: "The machine's definition (XState JSON).", content: { "application/json": { schema: { type: "object" } } } },
        ...errorAnswers(["401", "403", "404"])
      },
      security: [{ apiKey: [] }],
      "x-l02-scope": "read"
    }
  },
  "/openapi.json": {
    get: {
      operationId: "pages.openapi",
      summary: "This document",
      tags: ["pages"],
      responses: { "200": { description: "OpenAPI 3.1.", content: { "application/json": { schema: { type: "object" } } } } },
      security: [],
      "x-l02-scope": "public"
    }
  },
  "/docs": {
    get: {
      operationId: "pages.docs",
      summary: "This document as a self-contained HTML page",
      tags: ["pages"],
      responses: { "200": { description: "The page.", content: { "text/html": { schema: { type: "string" } } } } },
      security: [],
      "x-l02-scope": "public"
    }
  }
}

const build = (): Json => {
  const spec = OpenApi.fromApi(L02Api) as unknown as Json
  const schemas: Json = spec.components?.schemas ?? {}
  // The error schemas differ only by their status annotation: keep one ErrorBody.
  const duplicates = Object.keys(schemas).filter((name) => /^ErrorBody_\d+$/.test(name))
  for (const name of duplicates) delete schemas[name]
  spec.components = {
    ...spec.components,
    schemas,
    securitySchemes: { apiKey: { type: "http", scheme: "bearer", description: "An API key from http.api_keys, as `Authorization: Bearer <key>`." } }
  }
  for (const item of Object.values(spec.paths as Record<string, Json>)) {
    for (const operation of Object.values(item) as Array<Json>) {
      const name = String(operation.operationId).split(".")[1] as EndpointName
      const scope = endpointScopes[name]
      operation.security = scope === "public" ? [] : [{ apiKey: [] }]
      operation["x-l02-scope"] = scope
      for (const response of Object.values(operation.responses ?? {}) as Array<Json>) {
        for (const media of Object.values(response.content ?? {}) as Array<Json>) {
          if (typeof media.schema?.$ref === "string") media.schema.$ref = media.schema.$ref.replace(/ErrorBody_\d+$/, "ErrorBody")
          if (media["x-effect-stream"] !== undefined) {
            delete media["x-effect-stream"]
            media["x-l02-stream"] = errorEvent
          }
        }
      }
    }
  }
  spec.paths = { ...spec.paths, ...structuredClone(servedBeside) }
  return spec
}

let cached: string | undefined

/** The OpenAPI document as JSON text (built once). */
export const openApiJson = (): string => (cached ??= JSON.stringify(build()))

/** The OpenAPI document as an object (a fresh copy). */
export const openApiDocument = (): Json => JSON.parse(openApiJson())

const escapeHtml = (s: string) => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;")

let cachedHtml: string | undefined

/** The /docs page: every operation with its scope, parameters, body and answers; schemas linked to /openapi.json. */
export const docsHtml = (): string => {
  if (cachedHtml !== undefined) return cachedHtml
  const spec = openApiDocument()
  const sections: Array<string> = []
  for (const [path, item] of Object.entries(spec.paths as Record<string, Json>)) {
    for (const [method, operation] of Object.entries(item) as Array<[string, Json]>) {
      const params = (operation.parameters ?? []) as Array<Json>
      const body = operation.requestBody?.content?.["application/json"]?.schema
      const responses = Object.entries(operation.responses ?? {}) as Array<[string, Json]>
      sections.push(`<section id="${escapeHtml(operation.operationId)}">
<h2><code class="m ${method}">${method.toUpperCase()}</code> <code>${escapeHtml(path)}</code></h2>
<p>${escapeHtml(operation.summary ?? "")}</p>${operation.description === undefined ? "" : `<p>${escapeHtml(operation.description)}</p>`}
<p>Scope: <b>${escapeHtml(operation["x-l02-scope"])}</b></p>
${params.length === 0 ? "" : `<h3>Parameters</h3><ul>${params.map((p) => `<li><code>${escapeHtml(p.name)}</code> (${escapeHtml(p.in)}${p.required ? ", required" : ""}) ${escapeHtml(p.schema?.description ?? p.description ?? "")}</li>`).join("")}</ul>`}
${body === undefined ? "" : `<h3>Body</h3><pre>${escapeHtml(JSON.stringify(body, null, 2))}</pre>`}
<h3>Answers</h3><ul>${responses.map(([status, r]) => `<li><b>${escapeHtml(status)}</b> ${escapeHtml(r.description ?? "")} <small>${escapeHtml(Object.keys(r.content ?? {}).join(", "))}</small></li>`).join("")}</ul>
</section>`)
    }
  }
  cachedHtml = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(spec.info.title)} HTTP API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}section{border-top:1px solid #ddd;padding:.5rem 0}
pre{background:#f6f6f6;padding:.5rem;overflow:auto;max-height:20rem}.m{padding:0 .3rem;border-radius:3px;color:#fff}.get{background:#2a7}.post{background:#27c}.delete{background:#c33}.put{background:#a60}</style>
</head><body><h1>${escapeHtml(spec.info.title)} HTTP API <small>${escapeHtml(spec.info.version)}</small></h1>
<p>${escapeHtml(spec.info.description ?? "")}</p><p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI ${escapeHtml(spec.openapi)}).</p>
${sections.join("\n")}
</body></html>`
  return cachedHtml
}
