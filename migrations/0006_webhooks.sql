CREATE TABLE `webhook_attempts` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`event_id` text NOT NULL,
	`attempt` integer NOT NULL,
	`origin` text NOT NULL,
	`at` integer NOT NULL,
	`duration_ms` integer NOT NULL,
	`http_status` integer,
	`error` text,
	`response_body` text,
	FOREIGN KEY (`event_id`) REFERENCES `webhook_deliveries`(`event_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `webhook_attempts_event_idx` ON `webhook_attempts` (`event_id`,`attempt`);--> statement-breakpoint
CREATE TABLE `webhook_deliveries` (
	`event_id` text PRIMARY KEY NOT NULL,
	`app_id` text NOT NULL,
	`seq` integer NOT NULL,
	`status` text NOT NULL,
	`lease` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`next_attempt_at` integer NOT NULL,
	`last_attempt_at` integer,
	`last_status` integer,
	`last_error` text,
	`delivered_at` integer,
	`failed_at` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`app_id`) REFERENCES `applications`(`app_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `webhook_deliveries_app_status_idx` ON `webhook_deliveries` (`app_id`,`status`,`seq`);--> statement-breakpoint
CREATE INDEX `webhook_deliveries_due_idx` ON `webhook_deliveries` (`status`,`next_attempt_at`);--> statement-breakpoint
CREATE TABLE `webhook_secrets` (
	`app_id` text PRIMARY KEY NOT NULL,
	`secret_enc` text NOT NULL,
	`previous_secret_enc` text,
	`previous_expires_at` integer,
	`created_at` integer NOT NULL,
	`rotated_at` integer NOT NULL,
	FOREIGN KEY (`app_id`) REFERENCES `applications`(`app_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `webhook_sweep` (
	`name` text PRIMARY KEY NOT NULL,
	`seq` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `mapping_events` ADD `type` text DEFAULT 'mapping.updated' NOT NULL;--> statement-breakpoint
-- hand-written: older events get the kind their action implies (every event before this migration is a mapping change)
UPDATE `mapping_events` SET `type` = CASE `event_type` WHEN 'ADD' THEN 'mapping.added' WHEN 'DISABLE' THEN 'mapping.disabled' WHEN 'DELETE' THEN 'mapping.deleted' ELSE 'mapping.updated' END;--> statement-breakpoint
-- hand-written: webhooks start with the events after this migration; earlier ones stay in the changes feed only
INSERT INTO `webhook_sweep` (`name`, `seq`) SELECT 'outbox', coalesce(max(`id`), 0) FROM `mapping_events`;
