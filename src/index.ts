/**
 * affinetes: define sandboxed environments once, run them as local processes or Docker
 * containers, and call their methods.
 */
export { loadEnv } from "./environment/load-env.js";
export type { LoadEnvOptions } from "./environment/load-env.js";
export { connectEnv, runningEnvironmentNames } from "./environment/connect-env.js";
export type { ConnectEnvOptions } from "./environment/connect-env.js";
export type { EnvironmentHandle } from "./environment/open-environment.js";
export { Environment } from "./environment/environment.js";
export type { CallArguments, RemoteMethod, RemoteMethods } from "./environment/environment.js";
export { cleanupAllEnvironments, getEnvironment, listActiveEnvironments } from "./environment/registry.js";
export { buildImageFromEnv } from "./image/build-image.js";
export type { BuildImageOptions } from "./image/build-image.js";
export { detectEnvType, readEnvFolder } from "./runtime/env-folder.js";
export type { EnvFolder } from "./runtime/env-folder.js";
export type { CallOptions, MethodInfo } from "./transport/method-client.js";
export { DockerRuntime } from "./runtime/docker/docker-runtime.js";
export type { DockerRuntimeOptions } from "./runtime/docker/docker-runtime.js";
export type { DockerConnection } from "./runtime/docker/docker-connection.js";
export { ProcessRuntime } from "./runtime/process/process-runtime.js";
export type { ProcessRuntimeOptions } from "./runtime/process/process-runtime.js";
export type { Runtime } from "./runtime/runtime.js";
export type {
  EnvType,
  ExecOptions,
  ExecResult,
  Instance,
  InstanceEvent,
  InstanceInfo,
  InstanceKind,
  InstanceOf,
  InstanceSpec,
  RestartPolicy,
  RuntimeKind,
  SandboxInstance,
  SandboxSpec,
  ServeSpec,
  ServingInstance,
  TaskInstance,
  TaskSpec,
} from "./runtime/instance.js";
export type { ImageBuildRequest, RuntimeImages } from "./runtime/runtime-images.js";
export type { ReadinessStrategy, ReadinessTarget } from "./runtime/readiness/readiness-strategy.js";
export { Wait } from "./runtime/readiness/wait.js";
export { RUNTIME_VARIABLE } from "./runtime/resolve-runtime.js";
export type { NetworkPolicy } from "./runtime/network-policy.js";
export type { OperationOptions } from "./util/deadline.js";
export { InstancePool } from "./pool/instance-pool.js";
export type { PoolCallOptions, PoolStats } from "./pool/instance-pool.js";
export type { InstanceStats } from "./pool/pool-member.js";
export { createLoadBalancer } from "./pool/load-balancer.js";
// One host class; `SshHost` and `SshHostOptions` are the names it and its options had here before (aliases).
export { Host, Host as SshHost } from "./host/host.js";
export type { HostOptions, HostOptions as SshHostOptions } from "./host/ssh-connection.js";
export type { HostExecOptions, HostProcess, SpawnOptions } from "./host/command.js";
export type { RemoteStat } from "./host/host-files.js";
export { parseHostAddress } from "./host/host-address.js";
export type { HostAddress } from "./host/host-address.js";
export type { BalancerCandidate, LoadBalanceStrategy, LoadBalancer } from "./pool/load-balancer.js";
export { DEFAULT_BASE_IMAGE, configuredBaseImage } from "./config.js";
export { SlurmRuntime } from "./runtime/slurm/slurm-runtime.js";
export type { SlurmRuntimeOptions } from "./runtime/slurm/slurm-runtime.js";
export { Client, Containers, Disks, Images } from "./control/client/client.js";
export type {
  ClientOptions,
  ContainerInfo,
  ContainerOptions,
  DiskEntry,
  DiskInfo,
  ImageSource,
  PrincipalInfo,
} from "./control/client/client.js";
export { ContainerHandle } from "./control/client/container-handle.js";
export { Volume } from "./control/client/volume.js";
export { App } from "./control/client/app.js";
export { runExecutorLoop, runFunctionExecutor } from "./queue/executors/function-executor.js";
export type { ExecutorFunction, ExecutorLoopOptions } from "./queue/executors/function-executor.js";
export { runContainerExecutor } from "./queue/executors/container-executor.js";
export {
  Colonies,
  ProcessStates,
  funcSpec,
  newIdentity,
  generatePrivateKey,
  idOf,
} from "./queue/client/colonies.js";
export type {
  ChannelMessage,
  ColoniesOptions,
  Colony,
  Executor,
  FunctionSpec,
  Identity,
  LogEntry,
  Process,
  ProcessGraph,
} from "./queue/client/colonies.js";
export type { AppOptions } from "./control/client/app.js";
export { FunctionCall, FunctionHandle } from "./control/client/function-handle.js";
export type { FunctionOptions } from "./control/client/function-handle.js";
export type { InstanceStore, InstanceRecord, ResourceLimits } from "./rollout/instance-store.js";
export { openInstanceStore } from "./rollout/store/sql-instance-store.js";
export { openControlStore } from "./control/store/sql-control-store.js";
export type {
  ContainerFilter,
  ContainerRecord,
  ContainerStatus,
  ControlStore,
  DiskAccess,
  DiskRecord,
  VolumeMount,
} from "./control/control-store.js";
export {
  APIError,
  AbortedError,
  AffinetesError,
  BuildError,
  ConflictError,
  ContainerError,
  InstanceGoneError,
  PermissionDeniedError,
  ResourcesExhaustedError,
  SchemaTooNewError,
  SlurmError,
  UnauthenticatedError,
  CallAbortedError,
  CallError,
  CallTimeoutError,
  CallUnauthorizedError,
  CommandError,
  ConnectionError,
  HostConnectionError,
  EnvironmentClosedError,
  InfrastructureError,
  InstanceStartError,
  InvalidArgumentsError,
  MethodNotFoundError,
  NoHealthyInstanceError,
  NotFoundError,
  PoolStartError,
  RemoteError,
  RuntimeUnavailableError,
  TimeoutError,
  UnsupportedError,
  ValidationError,
} from "./errors.js";
export { Image } from "./image/image-builder.js";
export type { ImageBuildOptions } from "./image/image-builder.js";
export { rewriteBaseImage } from "./config.js";
