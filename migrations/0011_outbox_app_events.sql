PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_mapping_events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`event_id` text NOT NULL,
	`app_id` text NOT NULL,
	`user_id` text,
	`mapping_id` text,
	`event_type` text NOT NULL,
	`payload` text NOT NULL,
	`created_at` integer NOT NULL,
	`delivered_at` integer,
	`type` text DEFAULT 'mapping.updated' NOT NULL
);
--> statement-breakpoint
INSERT INTO `__new_mapping_events`("id", "event_id", "app_id", "user_id", "mapping_id", "event_type", "payload", "created_at", "delivered_at", "type") SELECT "id", "event_id", "app_id", "user_id", "mapping_id", "event_type", "payload", "created_at", "delivered_at", "type" FROM `mapping_events`;--> statement-breakpoint
DROP TABLE `mapping_events`;--> statement-breakpoint
ALTER TABLE `__new_mapping_events` RENAME TO `mapping_events`;--> statement-breakpoint
PRAGMA foreign_keys=ON;--> statement-breakpoint
CREATE UNIQUE INDEX `mapping_events_event_id_unique` ON `mapping_events` (`event_id`);--> statement-breakpoint
CREATE INDEX `mapping_events_app_seq_idx` ON `mapping_events` (`app_id`,`id`);--> statement-breakpoint
CREATE INDEX `mapping_events_undelivered_idx` ON `mapping_events` (`delivered_at`,`id`);