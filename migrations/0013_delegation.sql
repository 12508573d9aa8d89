CREATE TABLE `admin_group_members` (
	`admin_group_id` text NOT NULL,
	`user_id` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`admin_group_id`, `user_id`),
	FOREIGN KEY (`admin_group_id`) REFERENCES `admin_groups`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `admin_group_members_user_idx` ON `admin_group_members` (`user_id`);--> statement-breakpoint
CREATE TABLE `admin_groups` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`description` text,
	`rights` text NOT NULL,
	`scope_groups` text NOT NULL,
	`scope_users` text NOT NULL,
	`scope_apps` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `admin_groups_name_unique` ON `admin_groups` (`name`);--> statement-breakpoint
ALTER TABLE `audit_logs` ADD `authority` text;--> statement-breakpoint
CREATE INDEX `audit_logs_actor_idx` ON `audit_logs` (`actor_type`,`actor_id`);--> statement-breakpoint
CREATE INDEX `audit_logs_target_idx` ON `audit_logs` (`target_type`,`target_id`);--> statement-breakpoint
ALTER TABLE `applications` ADD `created_by` text;