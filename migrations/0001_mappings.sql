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