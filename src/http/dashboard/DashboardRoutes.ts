/**
 * The routes `l02 serve` adds beside the HttpApi declaration: the dashboard page (GET /dashboard,
 * public: the page itself asks for a key) and the machine definitions for Stately Studio
 * (GET /v1/machines/{name}, read scope).
 */
import { isMachineName, machineJson, exportableMachines } from "../../runtime/inspector.ts"
import { dashboardPage } from "./DashboardPage.ts"

/** What a dashboard route answers, before authentication (which `scope` says is needed). */
export type DashboardAnswer =
  | {
      readonly _tag: "Page"
      /** Endpoint name for metrics. */
      readonly endpoint: string
      readonly scope: "public" | "read"
      readonly contentType: string
      readonly body: string
      readonly headers: Readonly<Record<string, string>>
    }
  | { readonly _tag: "NotFound"; readonly endpoint: string; readonly scope: "read"; readonly message: string }

let page: ReturnType<typeof dashboardPage> | undefined

/** Matches a GET of the dashboard or a machine definition; undefined for every other request. */
export const dashboardRoute = (method: string, pathname: string): DashboardAnswer | undefined => {
  if (method !== "GET") return undefined
  if (pathname === "/dashboard" || pathname === "/dashboard/") {
    page ??= dashboardPage()
    return {
      _tag: "Page",
      endpoint: "dashboard",
      scope: "public",
      contentType: "text/html; charset=utf-8",
      body: page.html,
      headers: { "content-security-policy": page.contentSecurityPolicy, "referrer-policy": "no-referrer" }
    }
  }
  const found = /^\/v1\/machines\/([^/]+)$/.exec(pathname)
  if (found === null) return undefined
  let name: string
  try {
    name = decodeURIComponent(found[1]!)
  } catch {
    name = found[1]!
  }
  if (!isMachineName(name)) {
    return {
      _tag: "NotFound",
      endpoint: "machines",
      scope: "read",
      message: `no machine ${JSON.stringify(name.slice(0, 100))}; the machines are ${Object.keys(exportableMachines).join(", ")}`
    }
  }
  return {
    _tag: "Page",
    endpoint: "machines",
    scope: "read",
    contentType: "application/json; charset=utf-8",
    body: JSON.stringify(machineJson(name), null, 2),
    headers: {}
  }
}
