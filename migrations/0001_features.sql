CREATE TABLE `oidc_codes` (
	`code_hash` text PRIMARY KEY NOT NULL,
	`client_id` text NOT NULL,
	`user_id` text NOT NULL,
	`session_id` text NOT NULL,
	`redirect_uri` text NOT NULL,
	`scope` text NOT NULL,
	`nonce` text,
	`code_challenge` text,
	`auth_time` integer NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`used_at` integer,
	`family_id` text,
	`access_jti` text,
	`access_exp` integer,
	FOREIGN KEY (`client_id`) REFERENCES `applications`(`app_id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`session_id`) REFERENCES `sessions`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `oidc_codes_expires_idx` ON `oidc_codes` (`expires_at`);--> statement-breakpoint
CREATE TABLE `oidc_consents` (
	`user_id` text NOT NULL,
	`client_id` text NOT NULL,
	`scope` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`user_id`, `client_id`),
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`client_id`) REFERENCES `applications`(`app_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `oidc_session_clients` (
	`session_id` text NOT NULL,
	`client_id` text NOT NULL,
	`user_id` text NOT NULL,
	`created_at` integer NOT NULL,
	`notified_at` integer,
	PRIMARY KEY(`session_id`, `client_id`),
	FOREIGN KEY (`session_id`) REFERENCES `sessions`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`client_id`) REFERENCES `applications`(`app_id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `oidc_session_clients_user_idx` ON `oidc_session_clients` (`user_id`);--> statement-breakpoint
CREATE TABLE `mapping_events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`event_id` text NOT NULL,
	`app_id` text NOT NULL,
	`user_id` text NOT NULL,
	`mapping_id` text NOT NULL,
	`event_type` text NOT NULL,
	`payload` text NOT NULL,
	`created_at` integer NOT NULL,
	`delivered_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `mapping_events_event_id_unique` ON `mapping_events` (`event_id`);--> statement-breakpoint
CREATE INDEX `mapping_events_app_seq_idx` ON `mapping_events` (`app_id`,`id`);--> statement-breakpoint
CREATE INDEX `mapping_events_undelivered_idx` ON `mapping_events` (`delivered_at`,`id`);--> statement-breakpoint
ALTER TABLE `app_user_mappings` ADD `name` text;--> statement-breakpoint
ALTER TABLE `app_user_mappings` ADD `last_event_id` text;