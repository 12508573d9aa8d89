CREATE TABLE `directory_groups` (
	`id` text PRIMARY KEY NOT NULL,
	`type_id` text NOT NULL,
	`parent_id` text,
	`name` text NOT NULL,
	`sibling_key` text GENERATED ALWAYS AS (coalesce(parent_id, '')) VIRTUAL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`type_id`) REFERENCES `group_types`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`parent_id`) REFERENCES `directory_groups`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `directory_groups_parent_idx` ON `directory_groups` (`parent_id`);--> statement-breakpoint
CREATE UNIQUE INDEX `directory_groups_sibling_name_uq` ON `directory_groups` (`type_id`,`sibling_key`,`name`);--> statement-breakpoint
CREATE TABLE `group_memberships` (
	`user_id` text NOT NULL,
	`group_id` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`user_id`, `group_id`),
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`group_id`) REFERENCES `directory_groups`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `group_memberships_group_idx` ON `group_memberships` (`group_id`);--> statement-breakpoint
CREATE TABLE `group_types` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`built_in` integer DEFAULT false NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `app_permissions` (
	`id` text PRIMARY KEY NOT NULL,
	`app_id` text NOT NULL,
	`key` text NOT NULL,
	`name` text NOT NULL,
	`description` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`app_id`) REFERENCES `applications`(`app_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `app_permissions_app_key_uq` ON `app_permissions` (`app_id`,`key`);--> statement-breakpoint
CREATE TABLE `permission_grants` (
	`id` text PRIMARY KEY NOT NULL,
	`app_id` text NOT NULL,
	`permission_key` text NOT NULL,
	`subject_type` text NOT NULL,
	`subject_id` text NOT NULL,
	`scope_type` text DEFAULT '' NOT NULL,
	`scope_id` text DEFAULT '' NOT NULL,
	`effect` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`app_id`) REFERENCES `applications`(`app_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `permission_grants_uq` ON `permission_grants` (`app_id`,`permission_key`,`subject_type`,`subject_id`,`scope_type`,`scope_id`);--> statement-breakpoint
CREATE INDEX `permission_grants_subject_idx` ON `permission_grants` (`subject_type`,`subject_id`,`app_id`);--> statement-breakpoint
ALTER TABLE `applications` ADD `access_policy` text DEFAULT 'mapping' NOT NULL;--> statement-breakpoint
-- the built-in group types (src/directory/schema.ts BUILT_IN_GROUP_TYPES): never renamed, never deleted
INSERT INTO `group_types` (`id`, `name`, `built_in`, `created_at`, `updated_at`) VALUES ('department', 'Department', 1, 0, 0), ('role', 'Role', 1, 1, 1), ('label', 'Label', 1, 2, 2);
