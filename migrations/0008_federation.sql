CREATE TABLE `federation_flows` (
	`id` text PRIMARY KEY NOT NULL,
	`provider_id` text NOT NULL,
	`channel` text NOT NULL,
	`state_hash` text NOT NULL,
	`binding_hash` text NOT NULL,
	`code_verifier_enc` text NOT NULL,
	`nonce` text NOT NULL,
	`redirect_uri` text NOT NULL,
	`return_to` text,
	`app_id` text,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`used_at` integer,
	`profile` text,
	`ticket_hash` text,
	`ticket_expires_at` integer,
	`verified_mobile` text,
	`completed_at` integer,
	`user_id` text,
	FOREIGN KEY (`provider_id`) REFERENCES `identity_providers`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `federation_flows_state_hash_unique` ON `federation_flows` (`state_hash`);--> statement-breakpoint
CREATE UNIQUE INDEX `federation_flows_ticket_hash_unique` ON `federation_flows` (`ticket_hash`);--> statement-breakpoint
CREATE INDEX `federation_flows_expires_idx` ON `federation_flows` (`expires_at`);--> statement-breakpoint
CREATE TABLE `identity_providers` (
	`id` text PRIMARY KEY NOT NULL,
	`type` text NOT NULL,
	`display_name` text NOT NULL,
	`issuer` text,
	`authorization_endpoint` text,
	`token_endpoint` text,
	`userinfo_endpoint` text,
	`client_id` text NOT NULL,
	`client_secret_enc` text NOT NULL,
	`token_endpoint_auth_method` text DEFAULT 'client_secret_basic' NOT NULL,
	`scopes` text DEFAULT '[]' NOT NULL,
	`claim_mapping` text,
	`enabled` integer DEFAULT true NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `linked_identities` (
	`id` text PRIMARY KEY NOT NULL,
	`provider_id` text NOT NULL,
	`subject` text NOT NULL,
	`user_id` text NOT NULL,
	`display` text,
	`email` text,
	`email_verified` integer DEFAULT false NOT NULL,
	`created_at` integer NOT NULL,
	`last_used_at` integer,
	FOREIGN KEY (`provider_id`) REFERENCES `identity_providers`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `linked_identities_provider_subject_uq` ON `linked_identities` (`provider_id`,`subject`);--> statement-breakpoint
CREATE INDEX `linked_identities_user_idx` ON `linked_identities` (`user_id`);