//! The SSM operations ssmd implements, one module per capability, behind one entry point:
//! `Service::call` validates the input against the model, applies ClientToken idempotency and
//! dispatches to the typed operation. The HTTP layer, the local runbook runner and runbook
//! steps that call the SSM API all go through `call`, so every caller sees the same rules.

mod activations;
mod amazon;
pub mod automation;
pub mod commands;
mod documents;
mod errors;
mod idempotency;
mod instances;
pub mod nodes;
mod pagination;
pub mod parameters;
mod tags;
mod targets;
pub mod windows;

pub use amazon::amazon_documents;
pub use errors::store_error;

use ssmd_core::Clock;
use ssmd_core::token::TokenSigner;
use ssmd_model::shapes::*;
use ssmd_model::{ApiError, Caller, Operation, Ssm};
use ssmd_store::Store;
use std::sync::Arc;

/// The SSM service over a store and a clock.
pub struct Service {
    store: Store,
    clock: Arc<dyn Clock>,
    tokens: TokenSigner,
    automation: automation::Shared,
    commands: Arc<commands::Hub>,
    pickups: commands::pickup::Pickups,
    windows: windows::Settings,
    /// The master keys that seal SecureString values (`None`: SecureString is refused).
    parameter_keys: Option<Arc<parameters::crypto::MasterKeys>>,
}

impl Service {
    /// Builds the service; the pagination-token key is read from (or created in) the store so
    /// that every replica accepts every other replica's tokens.
    pub async fn new(store: Store, clock: Arc<dyn Clock>) -> Result<Service, ApiError> {
        Service::with_settings(store, clock, automation::Settings::default()).await
    }

    /// Builds the service with Automation settings.
    pub async fn with_settings(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: automation::Settings,
    ) -> Result<Service, ApiError> {
        let secret = store
            .server_secret("next-token-key", || {
                ssmd_core::ids::random_from(b"abcdefghijklmnopqrstuvwxyz0123456789", 48)
            })
            .await
            .map_err(store_error)?;
        let hub = Arc::new(commands::Hub::default());
        let h = hub.clone();
        store
            .bus()
            .subscribe("node:", Arc::new(move |node: &str| if node == "*" { h.wake_all() } else { h.wake(node) }));
        Ok(Service {
            clock,
            tokens: TokenSigner::new(secret.into_bytes()),
            automation: automation::Shared::new(settings),
            commands: hub,
            pickups: commands::pickup::Pickups::new(),
            windows: windows::Settings::default(),
            parameter_keys: None,
            store,
        })
    }

    /// Replaces the maintenance-window settings (before the service is shared).
    pub fn with_window_settings(mut self, settings: windows::Settings) -> Service {
        self.windows = settings;
        self
    }

    /// Gives the service the master keys that seal SecureString parameter values (before the
    /// service is shared).
    pub fn with_parameter_keys(mut self, keys: parameters::crypto::MasterKeys) -> Service {
        self.parameter_keys = Some(Arc::new(keys));
        self
    }

    /// Creates this replica's engine over the service's store and clock, and starts the
    /// service's background work on it. Stop it with `Engine::shutdown`.
    pub async fn run_background(self: &Arc<Self>) -> Result<ssmd_engine::Engine, ApiError> {
        let engine = ssmd_engine::Engine::new(self.store.clone(), self.clock.clone(), ssmd_core::ids::uuid());
        engine.start().await.map_err(store_error)?;
        self.start(&engine).await?;
        Ok(engine)
    }

    /// Starts the service's background work on `engine`: the job runners of Automation
    /// executions, Run Command deadlines and maintenance, and the message pickup worker.
    pub async fn start(self: &Arc<Self>, engine: &ssmd_engine::Engine) -> Result<(), ApiError> {
        let settings = &self.automation.settings;
        engine.run_jobs(
            automation::JOB_KIND,
            Arc::new(automation::Automation::new(self.clone())),
            ssmd_engine::Settings { slots: settings.workers, lease_ms: settings.lease_ms, ..Default::default() },
        );
        engine.run_jobs(
            ssmd_store::COMMAND_JOB,
            Arc::new(commands::worker::Deadlines::new(self.clone())),
            ssmd_engine::Settings { lease_ms: settings.lease_ms, ..Default::default() },
        );
        engine.run_jobs(
            commands::worker::MAINTENANCE_JOB,
            Arc::new(commands::worker::Maintenance::new(self.clone())),
            ssmd_engine::Settings { slots: 1, lease_ms: settings.lease_ms, ..Default::default() },
        );
        engine.run_jobs(
            ssmd_store::WINDOW_FIRE_JOB,
            Arc::new(windows::fire::Fires::new(self.clone())),
            ssmd_engine::Settings { lease_ms: settings.lease_ms, ..Default::default() },
        );
        engine.run_jobs(
            ssmd_store::WINDOW_RUN_JOB,
            Arc::new(windows::drive::Drivers::new(self.clone())),
            ssmd_engine::Settings { lease_ms: settings.lease_ms, ..Default::default() },
        );
        engine.run_jobs(
            ssmd_store::PARAMETER_EXPIRE_JOB,
            Arc::new(parameters::policies::Expirer::new(self.clone())),
            ssmd_engine::Settings { slots: 4, lease_ms: settings.lease_ms, ..Default::default() },
        );
        let now = self.now_ms();
        for key in [commands::worker::PURGE_REPLIES, commands::worker::PURGE_WINDOW_HISTORY] {
            self.store.add_job(commands::worker::MAINTENANCE_JOB, key, now, None, now).await.map_err(store_error)?;
        }
        if let Some(w) = self.pickups.worker(self.store.clone()) {
            engine.spawn(w);
        }
        Ok(())
    }

    /// Ends the node long polls being held and answers new ones at once (server shutdown).
    pub fn close_long_polls(&self) {
        self.commands.close();
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Milliseconds since the epoch, from the service's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Runs one operation for `caller` with a JSON input, returning the JSON output.
    pub async fn call(&self, caller: &Caller, op: Operation, input: serde_json::Value) -> Result<Vec<u8>, ApiError> {
        ssmd_model::validate::validate(op.info().input, &input)?;
        idempotency::run(self, caller, op, input, |input| ssmd_model::dispatch(self, caller, op, input)).await
    }
}

impl Ssm for Service {
    async fn create_document(&self, c: &Caller, i: CreateDocumentRequest) -> Result<CreateDocumentResult, ApiError> {
        documents::create(self, c, i).await
    }
    async fn get_document(&self, c: &Caller, i: GetDocumentRequest) -> Result<GetDocumentResult, ApiError> {
        documents::get(self, c, i).await
    }
    async fn describe_document(
        &self,
        c: &Caller,
        i: DescribeDocumentRequest,
    ) -> Result<DescribeDocumentResult, ApiError> {
        documents::describe(self, c, i).await
    }
    async fn list_documents(&self, c: &Caller, i: ListDocumentsRequest) -> Result<ListDocumentsResult, ApiError> {
        documents::list(self, c, i).await
    }
    async fn update_document(&self, c: &Caller, i: UpdateDocumentRequest) -> Result<UpdateDocumentResult, ApiError> {
        documents::update(self, c, i).await
    }
    async fn update_document_default_version(
        &self,
        c: &Caller,
        i: UpdateDocumentDefaultVersionRequest,
    ) -> Result<UpdateDocumentDefaultVersionResult, ApiError> {
        documents::update_default_version(self, c, i).await
    }
    async fn list_document_versions(
        &self,
        c: &Caller,
        i: ListDocumentVersionsRequest,
    ) -> Result<ListDocumentVersionsResult, ApiError> {
        documents::list_versions(self, c, i).await
    }
    async fn delete_document(&self, c: &Caller, i: DeleteDocumentRequest) -> Result<DeleteDocumentResult, ApiError> {
        documents::delete(self, c, i).await
    }
    async fn update_document_metadata(
        &self,
        c: &Caller,
        i: UpdateDocumentMetadataRequest,
    ) -> Result<UpdateDocumentMetadataResponse, ApiError> {
        documents::update_metadata(self, c, i).await
    }
    async fn list_document_metadata_history(
        &self,
        c: &Caller,
        i: ListDocumentMetadataHistoryRequest,
    ) -> Result<ListDocumentMetadataHistoryResponse, ApiError> {
        documents::metadata_history(self, c, i).await
    }
    async fn describe_document_permission(
        &self,
        c: &Caller,
        i: DescribeDocumentPermissionRequest,
    ) -> Result<DescribeDocumentPermissionResponse, ApiError> {
        documents::describe_permission(self, c, i).await
    }
    async fn modify_document_permission(
        &self,
        c: &Caller,
        i: ModifyDocumentPermissionRequest,
    ) -> Result<ModifyDocumentPermissionResponse, ApiError> {
        documents::modify_permission(self, c, i).await
    }
    async fn add_tags_to_resource(
        &self,
        c: &Caller,
        i: AddTagsToResourceRequest,
    ) -> Result<AddTagsToResourceResult, ApiError> {
        tags::add(self, c, i).await
    }
    async fn remove_tags_from_resource(
        &self,
        c: &Caller,
        i: RemoveTagsFromResourceRequest,
    ) -> Result<RemoveTagsFromResourceResult, ApiError> {
        tags::remove(self, c, i).await
    }
    async fn list_tags_for_resource(
        &self,
        c: &Caller,
        i: ListTagsForResourceRequest,
    ) -> Result<ListTagsForResourceResult, ApiError> {
        tags::list(self, c, i).await
    }
    async fn start_automation_execution(
        &self,
        c: &Caller,
        i: StartAutomationExecutionRequest,
    ) -> Result<StartAutomationExecutionResult, ApiError> {
        automation::start::start(self, c, i).await
    }
    async fn get_automation_execution(
        &self,
        c: &Caller,
        i: GetAutomationExecutionRequest,
    ) -> Result<GetAutomationExecutionResult, ApiError> {
        automation::query::get(self, c, i).await
    }
    async fn describe_automation_executions(
        &self,
        c: &Caller,
        i: DescribeAutomationExecutionsRequest,
    ) -> Result<DescribeAutomationExecutionsResult, ApiError> {
        automation::query::describe(self, c, i).await
    }
    async fn describe_automation_step_executions(
        &self,
        c: &Caller,
        i: DescribeAutomationStepExecutionsRequest,
    ) -> Result<DescribeAutomationStepExecutionsResult, ApiError> {
        automation::query::describe_steps(self, c, i).await
    }
    async fn send_automation_signal(
        &self,
        c: &Caller,
        i: SendAutomationSignalRequest,
    ) -> Result<SendAutomationSignalResult, ApiError> {
        automation::control::signal(self, c, i).await
    }
    async fn stop_automation_execution(
        &self,
        c: &Caller,
        i: StopAutomationExecutionRequest,
    ) -> Result<StopAutomationExecutionResult, ApiError> {
        automation::control::stop(self, c, i).await
    }
    async fn create_activation(
        &self,
        c: &Caller,
        i: CreateActivationRequest,
    ) -> Result<CreateActivationResult, ApiError> {
        activations::create(self, c, i).await
    }
    async fn describe_activations(
        &self,
        c: &Caller,
        i: DescribeActivationsRequest,
    ) -> Result<DescribeActivationsResult, ApiError> {
        activations::describe(self, c, i).await
    }
    async fn delete_activation(
        &self,
        c: &Caller,
        i: DeleteActivationRequest,
    ) -> Result<DeleteActivationResult, ApiError> {
        activations::delete(self, c, i).await
    }
    async fn deregister_managed_instance(
        &self,
        c: &Caller,
        i: DeregisterManagedInstanceRequest,
    ) -> Result<DeregisterManagedInstanceResult, ApiError> {
        nodes::deregister(self, c, i).await
    }
    async fn describe_instance_information(
        &self,
        c: &Caller,
        i: DescribeInstanceInformationRequest,
    ) -> Result<DescribeInstanceInformationResult, ApiError> {
        instances::describe(self, c, i).await
    }
    async fn send_command(&self, c: &Caller, i: SendCommandRequest) -> Result<SendCommandResult, ApiError> {
        commands::send::send(self, c, i).await
    }
    async fn list_commands(&self, c: &Caller, i: ListCommandsRequest) -> Result<ListCommandsResult, ApiError> {
        commands::query::list_commands(self, c, i).await
    }
    async fn list_command_invocations(
        &self,
        c: &Caller,
        i: ListCommandInvocationsRequest,
    ) -> Result<ListCommandInvocationsResult, ApiError> {
        commands::query::list_invocations(self, c, i).await
    }
    async fn get_command_invocation(
        &self,
        c: &Caller,
        i: GetCommandInvocationRequest,
    ) -> Result<GetCommandInvocationResult, ApiError> {
        commands::query::get_invocation(self, c, i).await
    }
    async fn cancel_command(&self, c: &Caller, i: CancelCommandRequest) -> Result<CancelCommandResult, ApiError> {
        commands::cancel::cancel(self, c, i).await
    }
    async fn create_maintenance_window(
        &self,
        c: &Caller,
        i: CreateMaintenanceWindowRequest,
    ) -> Result<CreateMaintenanceWindowResult, ApiError> {
        windows::create(self, c, i).await
    }
    async fn update_maintenance_window(
        &self,
        c: &Caller,
        i: UpdateMaintenanceWindowRequest,
    ) -> Result<UpdateMaintenanceWindowResult, ApiError> {
        windows::update(self, c, i).await
    }
    async fn get_maintenance_window(
        &self,
        c: &Caller,
        i: GetMaintenanceWindowRequest,
    ) -> Result<GetMaintenanceWindowResult, ApiError> {
        windows::get(self, c, i).await
    }
    async fn describe_maintenance_windows(
        &self,
        c: &Caller,
        i: DescribeMaintenanceWindowsRequest,
    ) -> Result<DescribeMaintenanceWindowsResult, ApiError> {
        windows::describe(self, c, i).await
    }
    async fn delete_maintenance_window(
        &self,
        c: &Caller,
        i: DeleteMaintenanceWindowRequest,
    ) -> Result<DeleteMaintenanceWindowResult, ApiError> {
        windows::delete(self, c, i).await
    }
    async fn register_target_with_maintenance_window(
        &self,
        c: &Caller,
        i: RegisterTargetWithMaintenanceWindowRequest,
    ) -> Result<RegisterTargetWithMaintenanceWindowResult, ApiError> {
        windows::register_target(self, c, i).await
    }
    async fn update_maintenance_window_target(
        &self,
        c: &Caller,
        i: UpdateMaintenanceWindowTargetRequest,
    ) -> Result<UpdateMaintenanceWindowTargetResult, ApiError> {
        windows::update_target(self, c, i).await
    }
    async fn deregister_target_from_maintenance_window(
        &self,
        c: &Caller,
        i: DeregisterTargetFromMaintenanceWindowRequest,
    ) -> Result<DeregisterTargetFromMaintenanceWindowResult, ApiError> {
        windows::deregister_target(self, c, i).await
    }
    async fn describe_maintenance_window_targets(
        &self,
        c: &Caller,
        i: DescribeMaintenanceWindowTargetsRequest,
    ) -> Result<DescribeMaintenanceWindowTargetsResult, ApiError> {
        windows::describe_targets(self, c, i).await
    }
    async fn register_task_with_maintenance_window(
        &self,
        c: &Caller,
        i: RegisterTaskWithMaintenanceWindowRequest,
    ) -> Result<RegisterTaskWithMaintenanceWindowResult, ApiError> {
        windows::register_task(self, c, i).await
    }
    async fn update_maintenance_window_task(
        &self,
        c: &Caller,
        i: UpdateMaintenanceWindowTaskRequest,
    ) -> Result<UpdateMaintenanceWindowTaskResult, ApiError> {
        windows::update_task(self, c, i).await
    }
    async fn get_maintenance_window_task(
        &self,
        c: &Caller,
        i: GetMaintenanceWindowTaskRequest,
    ) -> Result<GetMaintenanceWindowTaskResult, ApiError> {
        windows::get_task(self, c, i).await
    }
    async fn deregister_task_from_maintenance_window(
        &self,
        c: &Caller,
        i: DeregisterTaskFromMaintenanceWindowRequest,
    ) -> Result<DeregisterTaskFromMaintenanceWindowResult, ApiError> {
        windows::deregister_task(self, c, i).await
    }
    async fn describe_maintenance_window_tasks(
        &self,
        c: &Caller,
        i: DescribeMaintenanceWindowTasksRequest,
    ) -> Result<DescribeMaintenanceWindowTasksResult, ApiError> {
        windows::describe_tasks(self, c, i).await
    }
    async fn describe_maintenance_window_executions(
        &self,
        c: &Caller,
        i: DescribeMaintenanceWindowExecutionsRequest,
    ) -> Result<DescribeMaintenanceWindowExecutionsResult, ApiError> {
        windows::describe_executions(self, c, i).await
    }
    async fn get_maintenance_window_execution(
        &self,
        c: &Caller,
        i: GetMaintenanceWindowExecutionRequest,
    ) -> Result<GetMaintenanceWindowExecutionResult, ApiError> {
        windows::get_execution(self, c, i).await
    }
    async fn describe_maintenance_window_execution_tasks(
        &self,
        c: &Caller,
        i: DescribeMaintenanceWindowExecutionTasksRequest,
    ) -> Result<DescribeMaintenanceWindowExecutionTasksResult, ApiError> {
        windows::describe_task_executions(self, c, i).await
    }
    async fn get_maintenance_window_execution_task(
        &self,
        c: &Caller,
        i: GetMaintenanceWindowExecutionTaskRequest,
    ) -> Result<GetMaintenanceWindowExecutionTaskResult, ApiError> {
        windows::get_task_execution(self, c, i).await
    }
    async fn describe_maintenance_window_execution_task_invocations(
        &self,
        c: &Caller,
        i: DescribeMaintenanceWindowExecutionTaskInvocationsRequest,
    ) -> Result<DescribeMaintenanceWindowExecutionTaskInvocationsResult, ApiError> {
        windows::describe_invocations(self, c, i).await
    }
    async fn get_maintenance_window_execution_task_invocation(
        &self,
        c: &Caller,
        i: GetMaintenanceWindowExecutionTaskInvocationRequest,
    ) -> Result<GetMaintenanceWindowExecutionTaskInvocationResult, ApiError> {
        windows::get_invocation(self, c, i).await
    }
    async fn describe_maintenance_window_schedule(
        &self,
        c: &Caller,
        i: DescribeMaintenanceWindowScheduleRequest,
    ) -> Result<DescribeMaintenanceWindowScheduleResult, ApiError> {
        windows::schedule(self, c, i).await
    }
    async fn describe_maintenance_windows_for_target(
        &self,
        c: &Caller,
        i: DescribeMaintenanceWindowsForTargetRequest,
    ) -> Result<DescribeMaintenanceWindowsForTargetResult, ApiError> {
        windows::for_target(self, c, i).await
    }
    async fn cancel_maintenance_window_execution(
        &self,
        c: &Caller,
        i: CancelMaintenanceWindowExecutionRequest,
    ) -> Result<CancelMaintenanceWindowExecutionResult, ApiError> {
        windows::cancel(self, c, i).await
    }
    async fn put_parameter(&self, c: &Caller, i: PutParameterRequest) -> Result<PutParameterResult, ApiError> {
        parameters::put(self, c, i).await
    }
    async fn get_parameter(&self, c: &Caller, i: GetParameterRequest) -> Result<GetParameterResult, ApiError> {
        parameters::get(self, c, i).await
    }
    async fn get_parameters(&self, c: &Caller, i: GetParametersRequest) -> Result<GetParametersResult, ApiError> {
        parameters::get_many(self, c, i).await
    }
    async fn get_parameters_by_path(
        &self,
        c: &Caller,
        i: GetParametersByPathRequest,
    ) -> Result<GetParametersByPathResult, ApiError> {
        parameters::by_path(self, c, i).await
    }
    async fn describe_parameters(
        &self,
        c: &Caller,
        i: DescribeParametersRequest,
    ) -> Result<DescribeParametersResult, ApiError> {
        parameters::describe(self, c, i).await
    }
    async fn get_parameter_history(
        &self,
        c: &Caller,
        i: GetParameterHistoryRequest,
    ) -> Result<GetParameterHistoryResult, ApiError> {
        parameters::history(self, c, i).await
    }
    async fn delete_parameter(&self, c: &Caller, i: DeleteParameterRequest) -> Result<DeleteParameterResult, ApiError> {
        parameters::delete(self, c, i).await
    }
    async fn delete_parameters(
        &self,
        c: &Caller,
        i: DeleteParametersRequest,
    ) -> Result<DeleteParametersResult, ApiError> {
        parameters::delete_many(self, c, i).await
    }
    async fn label_parameter_version(
        &self,
        c: &Caller,
        i: LabelParameterVersionRequest,
    ) -> Result<LabelParameterVersionResult, ApiError> {
        parameters::label(self, c, i).await
    }
    async fn unlabel_parameter_version(
        &self,
        c: &Caller,
        i: UnlabelParameterVersionRequest,
    ) -> Result<UnlabelParameterVersionResult, ApiError> {
        parameters::unlabel(self, c, i).await
    }
}
