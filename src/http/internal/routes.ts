// The route table, built by reflecting over the HttpApi declaration so routing cannot drift from it.
import { HttpApi } from "effect/http-api"
import type { EndpointName } from "../HttpApi.ts"
import { L02Api } from "../HttpApi.ts"

export interface Route {
  readonly name: EndpointName
  readonly method: string
  readonly path: string
  /** Whether the endpoint declares query parameters; others refuse any. */
  readonly hasQuery: boolean
  /** Literal segments as strings, parameters as `{ param }`. */
  readonly segments: ReadonlyArray<string | { readonly param: string }>
}

export const routes: ReadonlyArray<Route> = (() => {
  const out: Array<Route> = []
  HttpApi.reflect(L02Api, {
    onGroup: () => {},
    onEndpoint: ({ endpoint }) => {
      out.push({
        name: endpoint.identifier as EndpointName,
        method: endpoint.method,
        path: endpoint.path,
        hasQuery: endpoint.query !== undefined,
        segments: endpoint.path
          .split("/")
          .slice(1)
          .map((s) => (s.startsWith(":") ? { param: s.slice(1) } : s))
      })
    }
  })
  return out
})()

export type Match =
  | { readonly _tag: "Found"; readonly route: Route; readonly params: Readonly<Record<string, string>> }
  | { readonly _tag: "WrongMethod"; readonly allow: ReadonlyArray<string> }
  | { readonly _tag: "NotFound" }

/** Matches decoded path segments against the table. */
export const match = (method: string, segments: ReadonlyArray<string>): Match => {
  const allow: Array<string> = []
  for (const route of routes) {
    if (route.segments.length !== segments.length) continue
    const params: Record<string, string> = {}
    const ok = route.segments.every((s, i) => {
      if (typeof s === "string") return s === segments[i]
      params[s.param] = segments[i]!
      return true
    })
    if (!ok) continue
    if (route.method === method) return { _tag: "Found", route, params }
    allow.push(route.method)
  }
  return allow.length > 0 ? { _tag: "WrongMethod", allow } : { _tag: "NotFound" }
}
