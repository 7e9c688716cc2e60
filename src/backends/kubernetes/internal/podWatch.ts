// A list-then-watch loop over the sandbox Pods of one namespace, as an informer does: list to get a
// baseline and a resourceVersion, watch from that version with bookmarks (which advance the version
// while nothing changes), reconnect from the last version when the connection drops, and list again
// when the server answers 410 Gone (the version was compacted away).
import type { KubeConfig, V1Pod, V1PodList } from "@kubernetes/client-node"
import { Watch } from "@kubernetes/client-node"
import { statusOf } from "./kubeErrors.ts"

/** What the loop reports, and how it lists. */
export interface PodWatchOptions {
  readonly kubeConfig: KubeConfig
  readonly namespace: string
  readonly labelSelector: string
  readonly list: () => Promise<V1PodList>
  /** Every list's Pods; `initial` on the first, which is a baseline, not a change. */
  readonly onList: (pods: ReadonlyArray<V1Pod>, initial: boolean) => void
  readonly onEvent: (type: "ADDED" | "MODIFIED" | "DELETED", pod: V1Pod) => void
  /** First retry delay; doubles on consecutive failures up to 5 s. */
  readonly retryMs?: number | undefined
}

/** Counters of a running loop, for tests and diagnostics. */
export interface PodWatchStats {
  lists: number
  connects: number
  disconnects: number
  bookmarks: number
  gone: number
  resourceVersion: string | undefined
}

/** A running loop. */
export interface PodWatch {
  readonly stats: PodWatchStats
  readonly stop: () => void
}

/** Starts the loop; it runs until `stop`. */
export const startPodWatch = (options: PodWatchOptions): PodWatch => {
  const watch = new Watch(options.kubeConfig)
  const path = `/api/v1/namespaces/${options.namespace}/pods`
  const firstRetry = options.retryMs ?? 200
  const stats: PodWatchStats = { lists: 0, connects: 0, disconnects: 0, bookmarks: 0, gone: 0, resourceVersion: undefined }
  let stopped = false
  let retry = firstRetry
  let timer: ReturnType<typeof setTimeout> | undefined
  let controller: AbortController | undefined

  const later = (f: () => void, ms: number) => {
    if (stopped) return
    timer = setTimeout(f, ms)
  }
  const backoff = () => {
    const delay = retry
    retry = Math.min(retry * 2, 5000)
    return delay
  }

  const relist = (): void => {
    options
      .list()
      .then((list) => {
        if (stopped) return
        stats.resourceVersion = list.metadata?.resourceVersion
        options.onList(list.items, stats.lists === 0)
        stats.lists += 1
        connect()
      })
      .catch(() => later(relist, backoff()))
  }

  const connect = (): void => {
    if (stopped) return
    let gone = false
    let received = false
    stats.connects += 1
    watch
      .watch(
        path,
        { resourceVersion: stats.resourceVersion, allowWatchBookmarks: true, labelSelector: options.labelSelector },
        (type: string, object: { metadata?: { resourceVersion?: string }; code?: number }) => {
          if (stopped) return
          if (type === "ERROR") {
            if (object.code === 410) gone = true
            return
          }
          received = true
          retry = firstRetry
          if (object.metadata?.resourceVersion !== undefined) stats.resourceVersion = object.metadata.resourceVersion
          if (type === "BOOKMARK") {
            stats.bookmarks += 1
            return
          }
          if (type === "ADDED" || type === "MODIFIED" || type === "DELETED") options.onEvent(type, object as V1Pod)
        },
        (error: unknown) => {
          if (stopped) return
          stats.disconnects += 1
          if (gone || statusOf(error) === 410) {
            stats.gone += 1
            later(relist, 0)
            return
          }
          // A clean end (the server's timeout) reconnects at once; a failure backs off.
          later(connect, error === null && received ? 0 : backoff())
        }
      )
      .then((c) => {
        controller = c
        if (stopped) c.abort()
      })
      .catch(() => later(connect, backoff()))
  }

  relist()
  return {
    stats,
    stop: () => {
      stopped = true
      if (timer !== undefined) clearTimeout(timer)
      controller?.abort()
    }
  }
}
