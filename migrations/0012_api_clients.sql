CREATE TABLE `api_clients` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`client_key` text NOT NULL,
	`api_key_hash` text NOT NULL,
	`status` text DEFAULT 'ACTIVE' NOT NULL,
	`expires_at` integer,
	`rights` text DEFAULT '[]' NOT NULL,
	`scope` text DEFAULT '{"groups":[],"users":[],"apps":[]}' NOT NULL,
	`allowed_ips` text DEFAULT '[]' NOT NULL,
	`allowed_origins` text DEFAULT '[]' NOT NULL,
	`allowed_paths` text DEFAULT '[]' NOT NULL,
	`rate_limit_per_minute` integer DEFAULT 600 NOT NULL,
	`created_by` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`last_used_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `api_clients_client_key_unique` ON `api_clients` (`client_key`);--> statement-breakpoint
CREATE INDEX `api_clients_created_idx` ON `api_clients` (`created_at`);