/**
 * This supervisor as a runner of Effect Cluster: Sharding over the socket transport of
 * `@effect/platform-node`, runners, shard locks, messages and replies in the shared PostgreSQL
 * store (tables `l02_cluster_*`), runner health by ping or by the Kubernetes API. The engine owns
 * membership, shard assignment, leases and redelivery; nothing here re-implements any of it.
 */
import * as NodeClusterSocket from "@effect/platform-node/NodeClusterSocket"
import * as NodeCrypto from "@effect/platform-node/NodeCrypto"
import * as RunnerAddress from "effect/cluster/RunnerAddress"
import * as ShardingConfig from "effect/cluster/ShardingConfig"
import * as SqlMessageStorage from "effect/cluster/SqlMessageStorage"
import * as SqlRunnerStorage from "effect/cluster/SqlRunnerStorage"
import * as Duration from "effect/Duration"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { RuntimeConfig } from "../domain/RuntimeConfig.ts"

/** The prefix of the cluster's tables in the store. */
export const tablePrefix = "l02_cluster"

/** This runner's address as the others reach it. */
export const runnerAddressOf = (cluster: RuntimeConfig["cluster"]) => RunnerAddress.make(cluster.runner_host, cluster.runner_port)

/** The engine's configuration from `cluster.*`. */
export const shardingConfigOf = (cluster: RuntimeConfig["cluster"]): Partial<ShardingConfig.ShardingConfig["Service"]> => ({
  runnerAddress: Option.some(runnerAddressOf(cluster)),
  runnerListenAddress: cluster.listen_host === "" ? Option.none() : Option.some(RunnerAddress.make(cluster.listen_host, cluster.runner_port)),
  shardsPerGroup: cluster.shards,
  shardLockExpiration: Duration.seconds(cluster.lease_seconds),
  shardLockRefreshInterval: Duration.seconds(cluster.lease_refresh_seconds),
  // Messages for a shard that just came here are found within a second.
  entityMessagePollInterval: Duration.seconds(1),
  refreshAssignmentsInterval: Duration.seconds(1),
  // An agent stays hosted (kept alive) until it ends; what idles here is an entity of an ended or unknown agent.
  entityMaxIdleTime: Duration.seconds(30),
  maxResidentEntities: "unbounded",
  simulateRemoteSerialization: false
})

/** Sharding, its runners and storage, over the store's SQL client. */
export const shardingLayer = (cluster: RuntimeConfig["cluster"]) => {
  const config = shardingConfigOf(cluster)
  const storage = Layer.mergeAll(
    SqlMessageStorage.layerWith({ prefix: tablePrefix }),
    Layer.orDie(SqlRunnerStorage.layerWith({ prefix: tablePrefix }))
  ).pipe(Layer.provide([ShardingConfig.layer(config), NodeCrypto.layerDigest]))
  return NodeClusterSocket.layer({
    storage: "byo",
    runnerHealth: cluster.health,
    runnerHealthK8s: { namespace: cluster.k8s_namespace, labelSelector: cluster.k8s_label_selector },
    shardingConfig: config
  }).pipe(Layer.provideMerge(storage))
}
